"""What a digest shows, as plain frozen values, and `assemble`, which makes them.

Nothing here reads the database: `edition` reads a digest's papers and translations and asks
`assemble` for each body. `render` and `web` consume only these values, never ORM objects (a
`Paper` or `Topic` is read here, never kept).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from newsletter.models import Paper, Topic
from newsletter.textfmt import abs_url_for, first_http_url, http_url

UNTRANSLATED_NOTE = "Not translated yet: the original abstract is shown."
TRANSLATION_NOTES = {
    "unavailable": "The translation service did not answer in time: the original is shown.",
    "refused": "No translation into this language is available: the original is shown.",
    "rejected": "The machine translation failed our checks: the original is shown.",
}
"""What a reader is told when an abstract has no translation, by `translate.Failure`."""


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
    title_translated: str | None = None
    """The title in the segment's language, when translated titles are on and one is stored."""
    abstract_translated: str | None = None
    """The abstract in the segment's language; None shows the original (English) only."""
    translation_note: str | None = None
    """Why the abstract is not translated this time (e.g. the translator failed), for readers."""
    paper_id: int = 0
    """The paper's row (rankings name papers by it); 0 for a paper not stored."""
    summary: str | None = None
    """One sentence about the paper in the segment's language, shown above the abstract, when a
    summarizer is configured and one is stored; None shows none."""


@dataclass(frozen=True)
class TopicSection:
    """The new papers of one topic in one digest, newest first, capped."""

    name: str
    slug: str
    description: str
    papers: tuple[PaperItem, ...]
    total: int
    """All new papers listed under this topic; those neither shown nor titled are "N more"."""
    listed_under: tuple[tuple[str, int], ...] = ()
    """(earlier topic, count): this topic's papers shown under an earlier topic instead."""
    titles_only: tuple[PaperItem, ...] = ()
    """Papers after `papers` listed by title alone, to keep an email under Gmail's clipping."""
    pool: tuple[PaperItem, ...] = ()
    """Every paper of this section, newest first, when a reader's own order may pick which are
    shown (ranking); empty: `papers` are the only ones a reader can be shown."""

    @property
    def more(self) -> int:
        return self.total - len(self.papers) - len(self.titles_only)

    @property
    def matched(self) -> int:
        """Every new paper this topic matched, wherever it is listed."""
        return self.total + sum(count for _name, count in self.listed_under)


CODE_NEWS_SHOWN = 20
"""Papers an email lists under "Code released since" (the rest are counted; the web shows all)."""


@dataclass(frozen=True)
class CodeNews:
    """A paper a reader was sent in an earlier digest whose code was found since their
    previous one ("Code released since")."""

    paper: PaperItem
    topic: str
    """The name of the reader's topic that matched it (their first, in display order)."""

    @property
    def code_url(self) -> str | None:
        """The link found (a stored paper's newest link comes first)."""
        return self.paper.code_url


CodeFound = Mapping[int, Sequence[tuple[PaperItem, datetime]]]
"""By topic id: the papers whose code was found in a digest's window, each with when the topic
first matched it (earlier than the window), newest submission first."""


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
    since: date | None = None
    """The first day a digest that spans several days covers (a weekly reader's); None: one
    day's."""
    code_released: tuple[CodeNews, ...] = ()
    """Papers of these topics sent earlier whose code was found since ("Code released since"),
    newest submission first; not counted in `paper_count`."""
    code_released_more: int = 0
    """Such papers not listed (over `CODE_NEWS_SHOWN` in an email)."""

    @property
    def paper_count(self) -> int:
        """Distinct papers listed or counted in this digest."""
        return sum(section.total for section in self.sections)

    @property
    def has_news(self) -> bool:
        """New papers, or code for earlier ones: something worth a message."""
        return bool(self.paper_count or self.code_released)


@dataclass(frozen=True)
class TranslatedText:
    abstract: str
    title: str | None = None


@dataclass(frozen=True)
class Translations:
    """One language's stored translations by arXiv id, and what readers are told where an
    abstract has none (the reason of this run's failure, or that it is not translated yet)."""

    texts: Mapping[str, TranslatedText] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)
    titles: bool = False
    """Show translated titles (under the English one)."""

    def apply(self, item: PaperItem) -> PaperItem:
        found = self.texts.get(item.arxiv_id)
        if found is None:
            return replace(item, translation_note=self.notes.get(item.arxiv_id, UNTRANSLATED_NOTE))
        return replace(
            item,
            abstract_translated=found.abstract,
            title_translated=found.title if self.titles else None,
        )


@dataclass(frozen=True)
class Heading:
    """A section's heading when it is not a topic's."""

    id: int
    name: str
    slug: str
    description: str = ""


FOLLOWED = Heading(
    -1,
    "From people you follow",
    "people-you-follow",
    "New papers by the authors you follow, whatever their topics.",
)
"""The first section of a reader who follows authors with new papers."""


def paper_item(paper: Paper) -> PaperItem:
    return PaperItem(
        arxiv_id=paper.arxiv_id,
        version=paper.version,
        title=paper.title,
        authors=tuple(paper.authors),
        abstract=paper.abstract,
        published=paper.published,
        abs_url=http_url(paper.abs_url) or abs_url_for(paper.arxiv_id),
        pdf_url=paper.pdf_url,
        code_url=first_http_url(paper.code_urls),
        primary_category=paper.primary_category,
        comment=paper.comment,
        paper_id=paper.id or 0,
    )


def assemble(
    topics: Sequence[Topic | Heading],
    papers: dict[int, list[PaperItem]],
    *,
    issue_date: date,
    cap: int | None,
    language: str,
    web_url: str,
    base_url: str,
    translations: Translations | None = None,
    summaries: Mapping[str, str] | None = None,
    pool: bool = False,
    followed: Sequence[PaperItem] = (),
    since: date | None = None,
    code_found: CodeFound | None = None,
    code_since: datetime | None = None,
) -> DigestContent:
    """One body's content: a section per topic, each paper once (under its first topic), capped.

    `followed` papers (by authors the reader follows) come first, in a section of their own
    (`FOLLOWED`), and are not repeated under their topics.

    With `translations`, the papers shown carry their translated abstract (or a note why not);
    with `summaries` (by arXiv id), their summary where one is stored.
    With `pool`, each section also keeps all its papers (translated alike), from which a
    reader's own order picks those shown.

    `code_found` papers of these topics that a topic matched after `code_since` (None: all)
    are listed under "Code released since" (`code_news`), those new in this body left out.
    """
    topic_names = tuple(topic.name for topic in topics)
    if followed:
        topics = [FOLLOWED, *topics]
        papers = {**papers, FOLLOWED.id: list(followed)}
    first_topic: dict[str, str] = {}
    also: dict[str, list[str]] = defaultdict(list)
    for topic in topics:
        for item in papers.get(topic.id, []):
            if item.arxiv_id in first_topic:
                also[item.arxiv_id].append(topic.name)
            else:
                first_topic[item.arxiv_id] = topic.name
    sections = []
    for topic in topics:
        own = [
            _with_also(item, also[item.arxiv_id])
            for item in papers.get(topic.id, [])
            if first_topic[item.arxiv_id] == topic.name
        ]
        elsewhere: dict[str, int] = defaultdict(int)
        for item in papers.get(topic.id, []):
            if first_topic[item.arxiv_id] != topic.name:
                elsewhere[first_topic[item.arxiv_id]] += 1
        if translations is not None or summaries:  # those a reader may be shown
            shown_at_most = len(own) if pool or cap is None else cap
            own = [
                _in_language(item, translations, summaries) for item in own[:shown_at_most]
            ] + own[shown_at_most:]
        shown = own if cap is None else own[:cap]
        sections.append(
            TopicSection(
                topic.name,
                topic.slug,
                topic.description,
                tuple(shown),
                len(own),
                listed_under=tuple(elsewhere.items()),
                pool=tuple(own) if pool else (),
            )
        )
    news = code_news(topics, code_found or {}, code_since, shown=first_topic)
    listed = news if cap is None else news[:CODE_NEWS_SHOWN]
    return DigestContent(
        date=issue_date,
        sections=tuple(sections),
        language=language,
        web_url=web_url,
        base_url=base_url,
        topic_names=topic_names,
        since=since,
        code_released=tuple(listed),
        code_released_more=len(news) - len(listed),
    )


def code_news(
    topics: Sequence[Topic | Heading],
    code_found: CodeFound,
    since: datetime | None,
    *,
    shown: Container[str] = (),
) -> list[CodeNews]:
    """The papers of `code_found` that one of `topics` matched after `since` (None: any), each
    once under the first such topic, newest submission first; papers `shown` (arXiv ids: new
    in the same body) left out."""
    found: dict[str, CodeNews] = {}
    for topic in topics:
        for item, linked in code_found.get(topic.id, ()):
            if item.arxiv_id in found or item.arxiv_id in shown:
                continue
            if since is None or linked > since:
                found[item.arxiv_id] = CodeNews(item, topic.name)
    return sorted(
        found.values(), key=lambda news: (news.paper.published, news.paper.arxiv_id), reverse=True
    )


def _in_language(
    item: PaperItem, translations: Translations | None, summaries: Mapping[str, str] | None
) -> PaperItem:
    """The item with its translation (or a note why not) and its summary, where stored."""
    if translations is not None:
        item = translations.apply(item)
    summary = summaries.get(item.arxiv_id) if summaries else None
    return replace(item, summary=summary) if summary else item


def _with_also(item: PaperItem, also_in: list[str]) -> PaperItem:
    return replace(item, also_in=tuple(also_in)) if also_in else item


def digest_web_url(base_url: str, issue_date: date | str) -> str:
    """A digest's page: a daily one's by its date, a span's by its `Digest.path`."""
    path = issue_date.isoformat() if isinstance(issue_date, date) else issue_date
    return f"{base_url}/digests/{path}"


def arranged(content: DigestContent, order: Sequence[str]) -> DigestContent:
    """The content as a reader with this `order` (arXiv ids, best first) sees it: each section
    shows as many papers as before, picked from its pool in their order (papers they have no
    rank for after, newest first)."""
    rank = {arxiv_id: place for place, arxiv_id in enumerate(order)}
    unranked = len(rank)
    sections = []
    for section in content.sections:
        pool = section.pool or section.papers
        ordered = sorted(pool, key=lambda item: rank.get(item.arxiv_id, unranked))  # stable
        sections.append(
            replace(
                section,
                papers=tuple(ordered[: len(section.papers)]),
                pool=tuple(ordered) if section.pool else (),
            )
        )
    return replace(content, sections=tuple(sections))
