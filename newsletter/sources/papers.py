"""A paper as arXiv gives it, made plain data (`FetchedPaper`): ids without versions, text
without control characters, links https and bounded, code links found in its text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import arxiv

from newsletter.errors import InvalidInput
from newsletter.sources.codelinks import find_code_links
from newsletter.textfmt import abs_url_for
from newsletter.userinput import CONTROL_CHARACTERS


@dataclass(frozen=True)
class FetchedPaper:
    """One paper as arXiv describes it, in plain values (text as arXiv gave it)."""

    arxiv_id: str
    """Without version: `2405.01234`, `hep-th/0101001`."""
    version: int
    title: str
    """Whitespace collapsed; otherwise as given (LaTeX and `<`, `&` included: escape on output)."""
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    primary_category: str
    published: datetime
    """When version 1 appeared (tz-aware, UTC)."""
    updated: datetime
    """When this version appeared (tz-aware, UTC)."""
    comment: str | None
    journal_ref: str | None
    doi: str | None
    abs_url: str
    """`https://arxiv.org/abs/<id>`, without version, so it always shows the latest."""
    pdf_url: str | None
    code_urls: tuple[str, ...]


_VERSIONED_ID = re.compile(r"(?P<id>.+?)v(?P<version>\d+)")


_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7}")
"""arXiv's identifiers: `2312.17296` since 2007, `hep-th/9901001` before."""


def paper_from_result(result: arxiv.Result) -> FetchedPaper:
    """A `FetchedPaper` from the `arxiv` package's parsed entry; InvalidInput when it is not
    a paper we can store (no arXiv id), with control characters dropped from its text and
    fields over their column's size left out."""
    short_id = result.get_short_id()
    match = _VERSIONED_ID.fullmatch(short_id)
    arxiv_id, version = (match["id"], int(match["version"])) if match else (short_id, 1)
    if not _ARXIV_ID.fullmatch(arxiv_id):
        raise InvalidInput(f"not an arXiv identifier: {short_id[:80]!r}")
    abstract = _clean(result.summary).strip()
    comment = _single_line(result.comment)
    categories = tuple(_clean(category)[:40] for category in result.categories)
    return FetchedPaper(
        arxiv_id=arxiv_id,
        version=version,
        title=_single_line(result.title) or "",
        abstract=abstract,
        authors=tuple(_clean(author.name).strip() for author in result.authors),
        categories=categories,
        primary_category=_clean(result.primary_category or "")[:40]
        or (categories[0] if categories else ""),
        published=result.published,
        updated=result.updated,
        comment=comment,
        journal_ref=_single_line(result.journal_ref),
        doi=_at_most(_single_line(result.doi), 200),
        abs_url=abs_url_for(arxiv_id),
        pdf_url=_at_most(_https(result.pdf_url), 300),
        code_urls=find_code_links(abstract, comment),
    )


def _clean(text: str | None) -> str:
    # No text of a paper needs a control character, and PostgreSQL refuses NUL in any text.
    return CONTROL_CHARACTERS.sub("", text or "")


def _at_most(text: str | None, length: int) -> str | None:
    """A value that fits its column, or None: a cut DOI or URL would point somewhere else."""
    return text if text is None or len(text) <= length else None


def _single_line(text: str | None) -> str | None:
    """Whitespace collapsed (legacy feeds wrap lines); None for absent or blank."""
    collapsed = " ".join(_clean(text).split())
    return collapsed or None


def _https(url: str | None) -> str | None:
    if url and url.startswith("http://arxiv.org/"):
        return "https://" + url.removeprefix("http://")
    return url
