"""How topic files (TOML or YAML) are read: every topic of a file checked as `TopicSpec`, the
bad ones with where they are and why.

Apart from `topics`, which every command that lists or stores topics imports: the parsers
(yaml, tomllib) are needed only by the commands that read a file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from newsletter.errors import InvalidInput
from newsletter.intake.topics import MAX_NAME, TopicSpec, topic_key


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
