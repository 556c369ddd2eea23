"""What a topic is, checked, and how topic files (TOML or YAML) are read."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from newsletter.errors import InvalidInput
from newsletter.userinput import one_line, without_control_characters

CATEGORY = re.compile(r"[a-z-]+(\.[A-Za-z-]+)?")
MAX_NAME = 100
"""The name's column (and its folded key's) holds 100 characters."""
MAX_PHRASE = 200
"""Longer is no phrase anyone searches for, and every phrase goes into the query's URL twice."""
MAX_SLUG = 90
"""The slug's column holds 100: room for the `-2` a second topic with the same slug gets."""


def topic_key(name: str) -> str:
    """The form under which topic names are unique and matched: case and spacing never make
    two topics (`visual  LOCALIZATION` is `Visual Localization`)."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class TopicSpec:
    """A topic as a user defines it: a name plus what it matches on arXiv.

    Everything is checked here, whether it came from the command line or a file, so nothing
    reaches the database, or arXiv's query, that could not be stored or would change the
    query's structure: keywords lose their double quotes and backslashes, a keyword with no
    letter or digit is refused, categories must look like arXiv's, and a raw query's
    parentheses and quotes must pair up.
    """

    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    raw_query: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        name = one_line(self.name, "the topic's name")
        if not name or len(name) > MAX_NAME or len(topic_key(name)) > MAX_NAME:
            raise InvalidInput(
                f"a topic needs a name of 1 to {MAX_NAME} characters, got {self.name!r}"
            )
        object.__setattr__(self, "name", name)
        description = without_control_characters(self.description, "the description").strip()
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "keywords", _phrases(self.keywords, "keyword"))
        object.__setattr__(self, "excludes", _phrases(self.excludes, "excluded phrase"))
        object.__setattr__(self, "categories", _categories(self.categories))
        object.__setattr__(self, "raw_query", _raw_query(self.raw_query))
        if not self.keywords and self.raw_query is None:
            raise InvalidInput(f"topic {name!r} needs at least one keyword or a raw query")


def _phrases(values, what: str) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        # arXiv has no escape for a double quote inside a phrase, and a backslash may escape
        # the closing one: both go (its search ignores punctuation in a phrase anyway).
        text = one_line(value, f"the {what} {value!r}")
        phrase = " ".join(text.replace('"', " ").replace("\\", " ").split())
        if not any(char.isalnum() for char in phrase):
            raise InvalidInput(
                f"the {what} {value!r} has no letter or digit (a phrase is words to search for)"
            )
        if len(phrase) > MAX_PHRASE:
            raise InvalidInput(f"the {what} {value[:40]!r}… is over {MAX_PHRASE} characters")
        seen.setdefault(phrase.casefold(), phrase)
    return tuple(seen.values())


def _categories(values) -> tuple[str, ...]:
    categories: dict[str, None] = {}
    for value in values:
        category = one_line(value, f"the category {value!r}")
        if not CATEGORY.fullmatch(category):
            raise InvalidInput(f"{value!r} is not an arXiv category (like cs.CV or hep-th)")
        categories[category] = None
    return tuple(categories)


def _raw_query(value: str | None) -> str | None:
    query = one_line(value or "", "the raw query")
    if not query:
        return None
    # The query is put in parentheses next to the keywords, categories and excludes: one
    # that closes more than it opens, or leaves a quote open, would step out of them.
    if "\\" in query:
        raise InvalidInput(f"the raw query {query!r} holds a backslash (arXiv's need none)")
    if query.count('"') % 2:
        raise InvalidInput(f"the raw query {query!r} leaves a double quote open")
    depth = 0
    for part in query.split('"')[::2]:  # outside quotes
        for char in part:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                raise InvalidInput(f"the raw query {query!r} closes a parenthesis it never opened")
    if depth:
        raise InvalidInput(f"the raw query {query!r} leaves a parenthesis open")
    return query


def slugify(name: str) -> str:
    """`Visual Localization` → `visual-localization`, for anchors and web addresses."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower())[:MAX_SLUG].strip("-")
    return slug or "topic"


# ---------------------------------------------------------------- topic files


@dataclass(frozen=True)
class RejectedTopic:
    where: str
    """The file and the topic: `topics.toml: topic #3 'SLAM'` (its name when it has one)."""
    reason: str


def read_topic_file(path: Path) -> list[TopicSpec]:
    """Every topic of a file, or InvalidInput naming the file and the first bad topic."""
    specs, rejected = read_topics(path)
    if rejected:
        raise InvalidInput(f"{rejected[0].where}: {rejected[0].reason}")
    return [spec for _, spec in specs]


def read_topics(path: Path) -> tuple[list[tuple[str, TopicSpec]], list[RejectedTopic]]:
    """Topics from a .toml (`[[topic]]` tables) or .yaml (`topics:` list) file, each with
    where it is (`topics.toml: topic #3 'SLAM'`), and the bad ones with why: one bad topic
    never hides the others. A file that cannot be read as a whole raises InvalidInput."""
    specs: list[tuple[str, TopicSpec]] = []
    rejected: list[RejectedTopic] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(_entries(path), 1):
        where = f"{path}: topic #{number}{_label(entry)}"
        try:
            spec = _spec_from_entry(entry)
        except InvalidInput as error:
            rejected.append(RejectedTopic(where, str(error)))
            continue
        key = topic_key(spec.name)
        if key in seen:
            rejected.append(RejectedTopic(where, f"its name repeats topic #{seen[key]}"))
            continue
        seen[key] = number
        specs.append((where, spec))
    return specs, rejected


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases (`*name`): a few lines of nested aliases expand to billions of
    values ("billion laughs"), and a topic file has no use for them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a topic file", event.start_mark
            )
        return super().compose_node(parent, index)


FILE_KINDS = {".toml": ("TOML", "topic"), ".yaml": ("YAML", "topics"), ".yml": ("YAML", "topics")}


def _entries(path: Path) -> list:
    kind, key = FILE_KINDS.get(path.suffix.lower(), (None, None))
    if kind is None:
        raise InvalidInput(f"{path}: a topic file is .toml or .yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: cannot read it as UTF-8 text ({error})") from error
    try:
        if kind == "TOML":
            document = tomllib.loads(text)
        else:  # yaml's SafeLoader (plain data, never objects), refusing aliases as well
            document = yaml.load(text, _NoAliasLoader)  # noqa: S506
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise InvalidInput(f"{path}: not valid {kind}: {error}") from error
    except RecursionError as error:
        raise InvalidInput(f"{path}: nested too deeply to be a topic file") from error
    layout = "[[topic]] tables" if kind == "TOML" else "a `topics:` list"
    if document is None:
        return []
    if not isinstance(document, dict):
        raise InvalidInput(f"{path}: expected {layout}, got {_kind(document)}")
    unknown = sorted(str(name) for name in document if name != key)
    if unknown:
        raise InvalidInput(f"{path}: unknown setting(s) {', '.join(unknown)}; expected {layout}")
    entries = document.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidInput(f"{path}: expected {layout}, got {_kind(entries)}")
    return entries


SETTINGS = ("name", "description", "keywords", "categories", "exclude", "query")


def _label(entry: object) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f" {' '.join(name.split())[:MAX_NAME]!r}" if isinstance(name, str) else ""


def _spec_from_entry(entry: object) -> TopicSpec:
    if not isinstance(entry, dict):
        raise InvalidInput(f"expected a table of settings, got {_kind(entry)}")
    unknown = sorted(str(name) for name in entry if name not in SETTINGS)
    if unknown:
        raise InvalidInput(
            f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(SETTINGS))})"
        )
    return TopicSpec(
        name=_text(entry, "name"),
        description=_text(entry, "description"),
        keywords=_texts(entry, "keywords"),
        categories=_texts(entry, "categories"),
        excludes=_texts(entry, "exclude"),
        raw_query=_text(entry, "query") or None,
    )


def _text(entry: dict, key: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be text (in quotes), got {_kind(value)}")
    return value


def _texts(entry: dict, key: str) -> tuple[str, ...]:
    # A lone string is refused rather than taken as a list of one: `keywords = "a, b"` would
    # otherwise search for the phrase "a, b", find nothing, and say nothing.
    value = entry.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidInput(f'{key} must be a list of text, like ["a", "b"]; got {_kind(value)}')
    for number, item in enumerate(value, 1):
        if not isinstance(item, str):
            raise InvalidInput(f"{key} item {number} must be text (in quotes), got {_kind(item)}")
    return tuple(value)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"a true/false value ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text ({value[:40]!r})"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class TopicEdit:
    """What an operator changes of a topic: phrases and categories added or removed (any
    case), the raw query ('' clears it) and the description; None keeps them."""

    add_keywords: tuple[str, ...] = ()
    remove_keywords: tuple[str, ...] = ()
    add_categories: tuple[str, ...] = ()
    remove_categories: tuple[str, ...] = ()
    add_excludes: tuple[str, ...] = ()
    remove_excludes: tuple[str, ...] = ()
    query: str | None = None
    description: str | None = None

    def applied_to(self, topic) -> TopicSpec:
        """The stored topic with the edits, checked as a whole: a keyword stored before the
        checks were stricter can still be removed."""
        return TopicSpec(
            name=topic.name,
            keywords=_edited(topic.keywords, self.add_keywords, self.remove_keywords),
            categories=_edited(topic.categories, self.add_categories, self.remove_categories),
            excludes=_edited(topic.excludes, self.add_excludes, self.remove_excludes),
            raw_query=topic.raw_query if self.query is None else self.query,
            description=topic.description if self.description is None else self.description,
        )


def _edited(values, add, remove) -> tuple[str, ...]:
    gone = {value.casefold() for value in remove}
    return tuple(v for v in values if v.casefold() not in gone) + tuple(add)
