"""What a topic is, checked (its files are read by `topic_files`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
