"""Author names: the folded form a follow is stored under, and whether a followed person is
among a paper's authors.

A name is folded before anything compares it: accents stripped (José = Jose, Søren = Soren),
case folded, dots dropped (`K.` = `K`), dashes and runs of spaces made one, "Last, First"
turned round, and a trailing Jr./Sr./II/III/IV dropped. A particle (van, von, de, del, della,
di, da, le, la, du, dos, ...) after the first name starts the surname: `Adrian Del Maestro`
and `Del Maestro, Adrian` are the same follow, `adrian del_maestro` (`follow_key`: given
names, then the surname with its words joined by `_`, as arXiv's `au:del_maestro` writes it).

A follow needs a surname and a first name or an initial: `He` alone is refused, as it would
match every He on arXiv.

How a follow matches one of a paper's authors:

- The surname must be the same, letters only (`Taylor-Sakyi` = `Taylor Sakyi`,
  `DelMaestro` = `Del Maestro`). An author's surname may be their last word or their last
  words (`Juan Jose Garau Luis` is found by a follow of `Juan Jose Garau Luis` and of
  `Garau Luis, Juan Jose`), but never all of their name: an author needs a first name too.
- First names: a full first name matches only the same full first name (`Kaiming` never
  matches `Kun`); an initial matches a full name or an initial with that letter. A hyphenated
  first name is one name: `Jean-Pierre` = `Jean Pierre` = `J.-P.` = `J. P.`, but `Jean` is
  not `Jean-Pierre`. Middle names and initials count only where both names have them:
  `Geoffrey Hinton` = `Geoffrey E. Hinton`, while `Michel J. Gingras` is not `Michel P.
  Gingras`.
- A match through an initial (`Kaiming He` and `K. He`) counts only when it is unambiguous on
  that paper: no other author there has the same surname and a first name with that initial
  (`K. He` among `Kaiming He, Kun He` matches neither). A match of full first names always
  counts. An author listed twice counts once.

`FollowIndex` answers "which of today's papers are by people this reader follows" for many
readers at once: papers are indexed by folded surname once, and each distinct follow is
matched once and remembered.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

from newsletter.errors import InvalidInput

MAX_NAME_LENGTH = 100
"""The longest name one can follow (characters as written)."""
MAX_NAME_WORDS = 8
"""The most words a followed name may have."""

PARTICLES = frozenset(
    "van von vom zu de del della delle dello degli dei der den di da dal le la lo du dos das"
    " do des ter ten te op bin ibn st san".split()
)
"""Words that start a surname when they follow a first name (`Antal van den Bosch`)."""
SUFFIXES = frozenset("jr sr ii iii iv".split())
"""Generational suffixes, dropped (`John W. Fisher III` = `John W. Fisher`)."""

_FOLDED_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "ı": "i", "þ": "th", "ħ": "h"}
)
_DASHES = re.compile(r"\s*[-‐‑‒–—−]+\s*")
_APOSTROPHES = re.compile(r"[’‘`´ʼ]")
_NAME_CHARACTER = re.compile(r"[^\W\d_]|[\s.,_'\-‐‑‒–—−’‘`´ʼ]")
"""What a name to follow may hold: letters (and the marks of accented ones), spaces, dots,
commas, dashes, apostrophes, and `_` joining the words of a surname (`Juan Garau_Luis`, as a
follow key writes it)."""


@dataclass(frozen=True)
class Given:
    """One word of a given name, folded: a full name (`kaiming`) or an initial (`k`)."""

    text: str
    joined: bool = False
    """Hyphenated to the word before it (`pierre` in `Jean-Pierre`)."""

    @property
    def initial(self) -> bool:
        return len(self.text) == 1


@dataclass(frozen=True)
class Name:
    """A name split into given names and surname, every word folded."""

    given: tuple[Given, ...]
    surname: tuple[str, ...]

    @property
    def surname_key(self) -> str:
        """The surname, letters only: what surnames are compared by."""
        return _letters("".join(self.surname))

    @property
    def key(self) -> str:
        """The stored form of a follow: `kaiming he`, `j-p serre`, `adrian del_maestro`."""
        given = ""
        for word in self.given:
            given += ("-" if word.joined else " ") + word.text
        return f"{given.strip()} {'_'.join(self.surname)}"


def fold(text: str) -> str:
    """`text` without accents, case folded: `José Müller-Łukasz` → `jose muller-lukasz`."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.translate(_FOLDED_LETTERS)


@lru_cache(maxsize=4096)
def follow_key(name: str) -> str:
    """The folded form of a name to follow, as `Follow.name_key` stores it; raises
    `InvalidInput` for a name that cannot be followed (empty, too long, a surname alone).

    Example: follow_key("He, Kaiming") == follow_key("Kaiming HE") == "kaiming he"
    """
    # Remembered: an import or a fetch meets the same few hundred names over and over, and
    # parsing one takes some 30 µs.
    return parse_follow(name).key


def parse_follow(name: str) -> Name:
    """A name to follow, split and folded; raises `InvalidInput` saying what is wrong."""
    text = " ".join(str(name).split())
    if not text:
        raise InvalidInput("an author's name to follow is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidInput(f"the author's name {text[:40]!r}… is over {MAX_NAME_LENGTH} characters")
    odd = sorted(
        {c for c in text if not _NAME_CHARACTER.fullmatch(c) and not unicodedata.combining(c)}
    )
    if odd:
        raise InvalidInput(
            f"{text!r} holds what no name does ({' '.join(map(repr, odd))}):"
            " write it as arXiv lists it, like 'Kaiming He'"
        )
    parts = [part for part in _folded(text).split(",") if part.strip()]
    if len(parts) == 3 and _is_suffix(parts[2]):
        parts = parts[:2]  # Fisher, John, Jr.
    elif len(parts) == 3 and _is_suffix(parts[1]):
        parts = [parts[0], parts[2]]  # Fisher, Jr., John
    if len(parts) > 2:
        raise InvalidInput(f"{text!r} has too many commas: write 'First Last' or 'Last, First'")
    if len(parts) == 2:
        given, surname = _units(parts[1]), _without_suffix(_units(parts[0]))
    elif parts and "_" in parts[0]:
        rest, _, last = parts[0].strip().rpartition(" ")
        given, surname = _units(rest), [unit for part in last.split("_") for unit in _units(part)]
    else:
        units = _without_suffix(_units(parts[0]) if parts else [])
        cut = _surname_start(units)
        given, surname = units[:cut], units[cut:]
    if not surname or not given:
        raise InvalidInput(
            f"{text!r} is a surname alone: add a first name or an initial (like 'Kaiming He'"
            " or 'K. He'), so that not every author of that surname matches"
        )
    if len(given) + len(surname) > MAX_NAME_WORDS:
        raise InvalidInput(f"{text!r} has more than {MAX_NAME_WORDS} words: is it one name?")
    return Name(_given(given), tuple(surname))


@lru_cache(maxsize=65_536)
def parse_key(key: str) -> Name | None:
    """A stored `follow_key` read back (None for one that is not); cached, as thousands of
    readers share the same keys."""
    try:
        return parse_follow(key)
    except InvalidInput:
        return None


def _folded(text: str) -> str:
    return _APOSTROPHES.sub("'", fold(" ".join(text.split())))


def _units(text: str) -> list[str]:
    """The words of a folded name part, a hyphenated name one word (`jean-pierre`, `j-p`,
    `taylor-sakyi`); dots end words (`J.P.` is two initials)."""
    text = re.sub(r"\.\s*-", "-", _DASHES.sub("-", text))
    units = []
    for raw in re.split(r"[\s.]+", text):
        pieces = [_letters_and_apostrophe(piece) for piece in raw.split("-")]
        unit = "-".join(piece for piece in pieces if piece)
        if unit:
            units.append(unit)
    return units


def _is_suffix(part: str) -> bool:
    units = _units(part)
    return len(units) == 1 and units[0] in SUFFIXES


def _without_suffix(units: list[str]) -> list[str]:
    while len(units) > 2 and units[-1] in SUFFIXES:
        units = units[:-1]
    return units


def _surname_start(units: list[str]) -> int:
    """Where the surname begins: at the first particle after a first name that has a word
    after it, else at the last word."""
    for index in range(1, len(units) - 1):
        if units[index] in PARTICLES:
            return index
    return len(units) - 1


def _given(units: Sequence[str]) -> tuple[Given, ...]:
    return tuple(
        Given(piece, joined=position > 0)
        for unit in units
        for position, piece in enumerate(unit.split("-"))
    )


def _letters(text: str) -> str:
    return "".join(c for c in text if c.isalpha())


def _letters_and_apostrophe(text: str) -> str:
    return "".join(c for c in text if c.isalpha() or c == "'").strip("'")


def author_names(name: str) -> tuple[Name, ...]:
    """Every way to read one of arXiv's author names as given names + surname: the surname is
    its last word, or its last words (`Juan Jose Garau Luis`: `luis`, `garau luis`, ...), never
    the whole name; "Last, First" has one reading. Empty for a name of one word."""
    parts = [part for part in _folded(name).split(",") if part.strip()]
    if len(parts) == 2 and not _is_suffix(parts[1]):
        given, surname = _units(parts[1]), _units(parts[0])
        return (Name(_given(given), tuple(surname)),) if given and surname else ()
    units = _without_suffix(_units(parts[0]) if parts else [])
    return tuple(
        Name(_given(units[:cut]), tuple(units[cut:])) for cut in range(len(units) - 1, 0, -1)
    )


def _compatible(one: Given, other: Given) -> bool:
    if one.initial or other.initial:
        return one.text[0] == other.text[0]
    return one.text == other.text


def _first_name(given: tuple[Given, ...]) -> tuple[Given, ...]:
    """The first given name with the words hyphenated to it (`jean-pierre`: two words)."""
    end = 1
    while end < len(given) and given[end].joined:
        end += 1
    return given[:end]


def given_names_agree(follow: tuple[Given, ...], author: tuple[Given, ...]) -> bool:
    """Whether two given names can be the same person's (see the module's rules)."""
    if not follow or not author:
        return False
    first_follow, first_author = _first_name(follow), _first_name(author)
    # A hyphenated first name is compared with as many words of the other name: `jean-pierre`
    # with `j p` or `jean pierre`, never with `jean` alone. A lone initial stands for it all.
    width = max(len(first_follow), len(first_author))
    lone_initial = (len(follow) == 1 and follow[0].initial) or (
        len(author) == 1 and author[0].initial
    )
    if width > min(len(follow), len(author)) and not lone_initial:
        return False
    if not all(_compatible(a, b) for a, b in zip(follow[:width], author[:width], strict=False)):
        return False
    return all(_compatible(a, b) for a, b in zip(follow[width:], author[width:], strict=False))


def _full_match(follow: tuple[Given, ...], author: tuple[Given, ...]) -> bool:
    return not follow[0].initial and not author[0].initial


@dataclass(frozen=True)
class _Reading:
    author: int
    """Which distinct author of the paper."""
    given: tuple[Given, ...]


def _readings_by_surname(authors: Sequence[str]) -> dict[str, list[_Reading]]:
    """A paper's distinct authors, each reading of each under its surname key."""
    found: dict[str, list[_Reading]] = {}
    seen: set[tuple] = set()
    for author in authors:
        readings = author_names(author)
        identity = tuple(reading.key for reading in readings)
        if not readings or identity in seen:  # the same name twice is one author
            continue
        seen.add(identity)
        number = len(seen)
        for reading in readings:
            found.setdefault(reading.surname_key, []).append(_Reading(number, reading.given))
    return found


def _matches(follow: Name, readings: list[_Reading]) -> bool:
    """Whether `follow` is one of the authors whose readings (all of one surname) are these."""
    candidates = [r for r in readings if given_names_agree(follow.given, r.given)]
    if not candidates:
        return False
    if any(_full_match(follow.given, r.given) for r in candidates):
        return True
    # Only through an initial: it must point at one author of the paper alone.
    letter = follow.given[0].text[0]
    same_initial = {r.author for r in readings if r.given[0].text[0] == letter}
    return len(same_initial) == 1


def follows_author(name_or_key: str, authors: Sequence[str]) -> bool:
    """Whether the person `name_or_key` (a name, or a `follow_key`) is among `authors`.

    Example: follows_author("Kaiming He", ["Xinlei Chen", "K. He"]) is True;
    follows_author("K. He", ["Kaiming He", "Kun He"]) is False (which K. He?).
    """
    follow = parse_follow(name_or_key)
    readings = _readings_by_surname(authors).get(follow.surname_key, [])
    return _matches(follow, readings)


PaperKey = TypeVar("PaperKey", bound=Hashable)


class FollowIndex(Generic[PaperKey]):
    """One day's papers indexed by their authors' surnames, to answer for each reader which
    of them are by people they follow.

        index = FollowIndex([(paper.id, paper.authors) for paper in papers])
        index.papers_for(("kaiming he", "adrian del_maestro"))  # → [12, 40], in input order

    Built once; each distinct follow key is matched once and its answer kept, so thousands of
    readers following the same people cost a dictionary look-up each.
    """

    def __init__(self, papers: Iterable[tuple[PaperKey, Sequence[str]]]) -> None:
        self._keys: list[PaperKey] = []
        self._by_surname: dict[str, list[tuple[int, list[_Reading]]]] = {}
        self._answers: dict[str, tuple[int, ...]] = {}
        for key, authors in papers:
            position = len(self._keys)
            self._keys.append(key)
            for surname, readings in _readings_by_surname(authors).items():
                self._by_surname.setdefault(surname, []).append((position, readings))

    def __len__(self) -> int:
        return len(self._keys)

    def positions_for(self, name_key: str) -> tuple[int, ...]:
        """Where (in the order given) the papers by the person `name_key` stand."""
        answer = self._answers.get(name_key)
        if answer is None:
            follow = parse_key(name_key)
            answer = ()
            if follow is not None:
                answer = tuple(
                    position
                    for position, readings in self._by_surname.get(follow.surname_key, ())
                    if _matches(follow, readings)
                )
            self._answers[name_key] = answer
        return answer

    def papers_for(self, name_keys: Iterable[str]) -> list[PaperKey]:
        """The papers by anyone of `name_keys` (`follow_key`s), each once, in the order the
        index was given them."""
        positions: set[int] = set()
        for name_key in name_keys:
            positions.update(self.positions_for(name_key))
        return [self._keys[position] for position in sorted(positions)]
