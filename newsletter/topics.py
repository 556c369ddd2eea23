"""What a topic is, checked, and how topic files (TOML or YAML) are read."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from newsletter.errors import InvalidInput

CATEGORY = re.compile(r"^[a-z-]+(\.[A-Za-z-]+)?$")
MAX_NAME = 100


@dataclass(frozen=True)
class TopicSpec:
    """A topic as a user defines it: a name plus what it matches on arXiv."""

    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    raw_query: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        name = " ".join(self.name.split())
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(
                f"a topic needs a name of 1 to {MAX_NAME} characters, got {self.name!r}"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "keywords", _phrases(self.keywords))
        object.__setattr__(self, "excludes", _phrases(self.excludes))
        object.__setattr__(
            self, "categories", tuple(c.strip() for c in self.categories if c.strip())
        )
        for category in self.categories:
            if not CATEGORY.match(category):
                raise InvalidInput(
                    f"topic {name!r}: {category!r} is not an arXiv category (like cs.CV or hep-th)"
                )
        raw = (self.raw_query or "").strip() or None
        object.__setattr__(self, "raw_query", raw)
        if not self.keywords and raw is None:
            raise InvalidInput(f"topic {name!r} needs at least one keyword or a raw query")


def _phrases(values) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        phrase = " ".join(str(value).split())
        if phrase and phrase.lower() not in seen:
            seen[phrase.lower()] = phrase
    return tuple(seen.values())


def slugify(name: str) -> str:
    """`Visual Localization` → `visual-localization`, for anchors and web addresses."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "topic"


def read_topic_file(path: Path) -> list[TopicSpec]:
    """Topics from a .toml (`[[topic]]` tables) or .yaml (`topics:` list) file.

    Every problem names the file and the topic's position, so a long file is easy to fix.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it ({error.strerror})") from error
    try:
        if path.suffix.lower() == ".toml":
            entries = tomllib.loads(text).get("topic", [])
        elif path.suffix.lower() in {".yaml", ".yml"}:
            entries = (yaml.safe_load(text) or {}).get("topics", [])
        else:
            raise InvalidInput(f"{path}: a topic file is .toml or .yaml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise InvalidInput(f"{path}: not valid {path.suffix[1:].upper()}: {error}") from error
    if not isinstance(entries, list):
        raise InvalidInput(f"{path}: expected a list of topics")
    return [_spec_from_entry(path, number, entry) for number, entry in enumerate(entries, 1)]


def _spec_from_entry(path: Path, number: int, entry: object) -> TopicSpec:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{path}: topic #{number} is not a table of settings")
    known = {"name", "description", "keywords", "categories", "exclude", "query"}
    unknown = set(entry) - known
    if unknown:
        raise InvalidInput(
            f"{path}: topic #{number} has unknown setting(s) {', '.join(sorted(unknown))}"
            f" (known: {', '.join(sorted(known))})"
        )
    try:
        return TopicSpec(
            name=str(entry.get("name", "")),
            description=str(entry.get("description", "")),
            keywords=tuple(_as_list(entry.get("keywords"))),
            categories=tuple(_as_list(entry.get("categories"))),
            excludes=tuple(_as_list(entry.get("exclude"))),
            raw_query=entry.get("query"),
        )
    except InvalidInput as error:
        raise InvalidInput(f"{path}: topic #{number}: {error}") from error


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]
