"""Which papers go to whom: the plain data a digest is made of.

The logic that fills these from the database lives further down this module; `render` and
`web` consume only these plain, frozen values, never ORM objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class PaperItem:
    """One paper as a digest shows it (text as arXiv gave it; `render` makes it readable)."""

    arxiv_id: str
    version: int
    title: str
    authors: tuple[str, ...]
    abstract: str
    published: datetime
    abs_url: str
    pdf_url: str | None
    code_url: str | None = None
    primary_category: str = ""
    comment: str | None = None
    also_in: tuple[str, ...] = ()
    """Names of the subscriber's other topics this paper matches (it is shown only once)."""


@dataclass(frozen=True)
class TopicSection:
    """The new papers of one topic in one digest, newest first, capped."""

    name: str
    slug: str
    description: str
    papers: tuple[PaperItem, ...]
    total: int
    """All new papers of this topic in the digest; `total - len(papers)` are "N more"."""

    @property
    def more(self) -> int:
        return self.total - len(self.papers)


@dataclass(frozen=True)
class DigestContent:
    """What one segment of subscribers (same topics, same language) receives."""

    date: date
    sections: tuple[TopicSection, ...]
    language: str = "en"
    web_url: str = ""
    """The browser version of this digest."""
    base_url: str = ""
    topic_names: tuple[str, ...] = field(default=())

    @property
    def paper_count(self) -> int:
        """Distinct papers listed or counted in this digest."""
        return sum(section.total for section in self.sections)

    @property
    def shown_count(self) -> int:
        return sum(len(section.papers) for section in self.sections)
