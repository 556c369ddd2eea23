"""Seed papers as people give them: arXiv identifiers (typed, pasted, as links) and BibTeX
files (a Zotero or Google Scholar export), read into `Seed`s to be matched to arXiv by eprint
id, DOI or exact title (`sources.lookup`).

Each entry stands alone: one that cannot be read is a `SeedProblem` naming it (the text typed,
or the file, line and key of a BibTeX entry) and why; the others are kept.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import bibtexparser
from bibtexparser.model import DuplicateBlockKeyBlock, Entry, ParsingFailedBlock

from newsletter.textfmt import readable_title
from newsletter.userinput import CONTROL_CHARACTERS

NEW_STYLE = r"\d{4}\.\d{4,5}"
OLD_STYLE = r"[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7}"
_ID = rf"(?P<id>{NEW_STYLE}|{OLD_STYLE})(?:v\d+)?"
_TYPED_ID = re.compile(
    rf"(?:arxiv:\s*|(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/)?{_ID}(?:\.pdf)?/?",
    re.IGNORECASE,
)
_ID_IN_TEXT = re.compile(rf"(?:arxiv[:\s]\s*|arxiv\.org/(?:abs|pdf)/){_ID}", re.IGNORECASE)
"""An arXiv id where a BibTeX field names one: `arXiv:2010.11929`, `arxiv.org/abs/…`."""
_ARXIV_DOI = re.compile(rf"10\.48550/arxiv\.{_ID}", re.IGNORECASE)
"""arXiv's own DOIs (`10.48550/arXiv.2405.01234`) are arXiv ids."""
_DOI = re.compile(r"(?:https?://(?:dx\.)?doi\.org/|doi:\s*)?(?P<doi>10\.\d{4,9}/\S+)", re.I)
_KEY = re.compile(r"@\s*\w+\s*[{(]\s*([^,\s]+)")
_ID_FIELDS = ("eprint", "arxivid", "url", "journal", "number", "note", "howpublished", "doi")


@dataclass(frozen=True)
class Seed:
    """One paper a reader named: what it can be matched by (at least one of the three)."""

    label: str
    """Where it came from, for the report: the text typed, or `file.bib:12 key`."""
    arxiv_id: str | None = None
    """Without version."""
    doi: str | None = None
    title: str | None = None
    """Readable text (LaTeX and BibTeX's braces turned into text)."""


@dataclass(frozen=True)
class SeedProblem:
    """An entry that names no paper we can look for, and why."""

    label: str
    reason: str


def arxiv_id_of(text: str) -> str | None:
    """The arXiv id (without version) that `text` is, in any of the ways people write one:
    `2405.01234`, `2405.01234v2`, `arXiv:2405.01234`, `hep-th/9901001`, an abs or pdf link.
    None when it is none of them."""
    found = _TYPED_ID.fullmatch(text.strip())
    return _id(found) if found else None


def _id(found: re.Match[str]) -> str | None:
    arxiv_id = found["id"]
    if "/" not in arxiv_id:
        # YYMM.NNNN from April 2007, YYMM.NNNNN from January 2015.
        month, number = arxiv_id.split(".")
        five_digits = month >= "1501"
        if not 1 <= int(month[2:]) <= 12 or (len(number) == 5) != five_digits:
            return None
        return arxiv_id
    # Old-style archives are lower case (`hep-th`), their subject classes upper (`math.AG`).
    if "/" in arxiv_id:
        archive, number = arxiv_id.split("/")
        name, _, subject = archive.partition(".")
        arxiv_id = f"{name.lower()}{'.' + subject.upper() if subject else ''}/{number}"
    return arxiv_id


def seeds_from_ids(texts: Iterable[str]) -> tuple[list[Seed], list[SeedProblem]]:
    """Typed identifiers as seeds; each one that is no arXiv id is a problem."""
    seeds, problems = [], []
    for text in texts:
        shown = CONTROL_CHARACTERS.sub("", text).strip()[:200]
        arxiv_id = arxiv_id_of(shown)
        if arxiv_id is None:
            problems.append(
                SeedProblem(shown or repr(text), "not an arXiv identifier (like 2405.01234)")
            )
        else:
            seeds.append(Seed(shown, arxiv_id=arxiv_id))
    return seeds, problems


def seeds_from_bibtex(text: str, name: str) -> tuple[list[Seed], list[SeedProblem]]:
    """The entries of a BibTeX file (`name` is how the report names it) as seeds.

    An entry is matched by its arXiv id (the `eprint` field, or an arXiv id or link in `url`,
    `journal`, `number`, `note`, `howpublished`, or an arXiv DOI, as Zotero and Google Scholar
    write them), its DOI, or its title. One that BibTeX cannot read, or one with none of the
    three, is a problem reported at its line; the rest are read (one whose key repeats an
    earlier entry's too: it still names its paper).
    """
    with _quiet_bibtexparser():
        library = bibtexparser.parse_string(CONTROL_CHARACTERS.sub("", text))
    seeds, problems = [], []
    for block in library.blocks:
        line = (block.start_line or 0) + 1
        if isinstance(block, DuplicateBlockKeyBlock):
            block = block.ignore_error_block  # a key used twice still names its paper
        if isinstance(block, ParsingFailedBlock):
            key = _KEY.search(block.raw or "")
            label = f"{name}:{line}" + (f" {key.group(1)}" if key else "")
            problems.append(SeedProblem(label, f"not valid BibTeX: {_reason(block.error)}"))
        elif isinstance(block, Entry):
            label = f"{name}:{line} {block.key}"
            seed = _seed_of(block, label)
            if seed is None:
                problems.append(SeedProblem(label, "has no arXiv id, DOI or title to match"))
            else:
                seeds.append(seed)
    return seeds, problems


def _seed_of(entry: Entry, label: str) -> Seed | None:
    fields = {field.key.lower(): str(field.value) for field in entry.fields}
    arxiv_id = None
    eprint = fields.get("eprint", "")
    prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv").lower()
    if eprint and prefix == "arxiv":
        arxiv_id = arxiv_id_of(eprint)
    for key in _ID_FIELDS:
        if arxiv_id is not None:
            break
        value = fields.get(key, "")
        found = _ARXIV_DOI.search(value) or _ID_IN_TEXT.search(value)
        if found is None and key == "arxivid":
            found = _TYPED_ID.fullmatch(value.strip())
        arxiv_id = _id(found) if found else None
    doi_found = _DOI.search(fields.get("doi", ""))
    doi = doi_found["doi"].rstrip(".,;") if doi_found else None
    if doi is not None and _ARXIV_DOI.fullmatch(doi):
        doi = None  # it named the arXiv id, taken above
    title = readable_title(_unbraced(fields.get("title", ""))) or None
    if arxiv_id is None and doi is None and title is None:
        return None
    return Seed(label, arxiv_id=arxiv_id, doi=doi, title=title)


def _unbraced(text: str) -> str:
    """A BibTeX title without the braces that only protect capitals (`{BERT}`)."""
    return re.sub(r"(?<!\\)[{}]", "", text)


def normalised_title(text: str) -> str:
    """A title as compared for an exact match: readable text, accents, case, punctuation and
    spacing ignored (`On {BERT}: Pre-training` = `On BERT — pre-training`)."""
    readable = readable_title(_unbraced(text))
    folded = unicodedata.normalize("NFKD", readable).casefold()
    folded = "".join(character for character in folded if not unicodedata.combining(character))
    return " ".join(re.findall(r"\w+", folded))


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if type(error).__name__ == "BlockAbortedException":
        return "an entry that does not close (a missing brace or quote)"
    return text[:200]


@contextmanager
def _quiet_bibtexparser() -> Iterator[None]:
    """bibtexparser logs each entry it cannot read; we report them ourselves, once."""
    logger = logging.getLogger("bibtexparser")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
