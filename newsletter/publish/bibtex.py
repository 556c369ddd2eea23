"""A reader's library as BibTeX: one `@misc` entry a paper with arXiv's eprint fields, as
arXiv's own "Export BibTeX citation" gives them, written by bibtexparser 2.

    @misc{he2021masked,
      title = {Masked Autoencoders Are Scalable Vision Learners},
      author = {Kaiming He and Xinlei Chen and ...},
      year = {2021},
      eprint = {2111.06377},
      archivePrefix = {arXiv},
      primaryClass = {cs.CV},
      url = {https://arxiv.org/abs/2111.06377}
    }

Titles and names are arXiv's LaTeX source, so LaTeX in them (`$\\alpha$`, `\\"o`) is kept;
what would break BibTeX or LaTeX is escaped: `& % # _` and `^` outside math, a `$` that opens
no formula, and braces that do not pair (BibTeX counts every brace, escaped or not, so they
become `\\textbraceleft{}`/`\\textbraceright{}`). A name holding " and " or a comma is braced,
so it stays one author. The DOI is written as it is (biblatex reads it verbatim), and left out
in the rare case it holds a brace, a backslash or a space.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import bibtexparser
from bibtexparser.model import Entry, Field

from newsletter.models import Paper
from newsletter.textfmt import collapse_whitespace

BIBTEX_MIMETYPE = "application/x-bibtex"

_MATH = re.compile(r"(?<!\\)\$[^$]+(?<!\\)\$")
_SPECIAL = re.compile(r"(?<!\\)([&%#_])")
_CARET = re.compile(r"(?<!\\)\^")
_DOLLAR = re.compile(r"(?<!\\)\$")
_KEY_STOP_WORDS = {"a", "an", "the", "on", "of", "in", "for", "to", "and", "with", "towards"}


def library_bibtex(papers: Iterable[Paper]) -> str:
    """The papers as a BibTeX file, in the given order, each under a key of its own."""
    library = bibtexparser.Library()
    keys: set[str] = set()
    for paper in papers:
        key = _unique(citation_key(paper), keys)
        library.add(Entry("misc", key, [Field(name, value) for name, value in _fields(paper)]))
    if not library.entries:
        return ""
    bibtex_format = bibtexparser.BibtexFormat()
    bibtex_format.indent = "  "
    return bibtexparser.write_string(library, bibtex_format=bibtex_format)


def _fields(paper: Paper) -> list[tuple[str, str]]:
    fields = [
        ("title", bibtex_text(paper.title)),
        ("author", " and ".join(bibtex_name(name) for name in paper.authors)),
        ("year", str(paper.published.year)),
        ("eprint", paper.arxiv_id),
        ("archivePrefix", "arXiv"),
    ]
    if paper.primary_category:
        fields.append(("primaryClass", paper.primary_category))
    fields.append(("url", paper.abs_url))
    if paper.doi and _verbatim_safe(paper.doi):
        fields.append(("doi", paper.doi))  # verbatim in biblatex: `\_` would be two characters
    return fields


def _verbatim_safe(value: str) -> bool:
    """A value that can stand in braces as it is: no brace, backslash or line break."""
    return not re.search(r"[{}\\\s]", value)


def bibtex_text(text: str) -> str:
    """Text made safe inside a braced BibTeX value (see the module's docstring)."""
    text = collapse_whitespace(text)
    pieces, position = [], 0
    for match in _MATH.finditer(text):
        pieces.append(_escape_text(text[position : match.start()]))
        pieces.append(match.group())
        position = match.end()
    pieces.append(_escape_text(text[position:]))
    escaped = "".join(pieces)
    if not _braces_pair(escaped):
        escaped = escaped.replace("{", "\0").replace("}", "\\textbraceright{}")
        escaped = escaped.replace("\0", "\\textbraceleft{}")
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        escaped = escaped[:-1] + "\\textbackslash{}"  # would otherwise escape the closing brace
    return escaped


def _escape_text(text: str) -> str:
    text = _SPECIAL.sub(r"\\\1", text)
    text = _CARET.sub(r"\\^{}", text)
    return _DOLLAR.sub(r"\\$", text)


def _braces_pair(text: str) -> bool:
    depth = 0
    for character in text:
        if character == "{":
            depth += 1
        elif character == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def bibtex_name(name: str) -> str:
    """One author, kept one: braced when " and " or a comma would split or turn it."""
    escaped = bibtex_text(name)
    if re.search(r"\sand\s", escaped, re.IGNORECASE) or "," in escaped:
        return "{" + escaped + "}"
    return escaped


def citation_key(paper: Paper) -> str:
    """`<first author's surname><year><first word of the title>`, ASCII letters and digits:
    `he2021masked`; `arxiv<id>` when there is no usable name or word."""
    surname = _ascii_word(paper.authors[0].split()[-1]) if paper.authors else ""
    words = [_ascii_word(word) for word in re.split(r"[\s\-:/]+", paper.title)]
    word = next((w for w in words if w and w not in _KEY_STOP_WORDS), "")
    if not surname:
        return "arxiv" + re.sub(r"[^0-9a-z]", "", paper.arxiv_id.lower())
    return f"{surname}{paper.published.year}{word}"


def _ascii_word(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def _unique(key: str, taken: set[str]) -> str:
    """The key, or with a letter (b, c, ...) then a number after it, never one taken yet."""
    candidate, suffix = key, 0
    while candidate in taken:
        suffix += 1
        letter = chr(ord("a") + suffix) if suffix < 26 else str(suffix)
        candidate = key + letter
    taken.add(candidate)
    return candidate
