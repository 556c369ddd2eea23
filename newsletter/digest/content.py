"""Which papers go to whom: the plain data a digest is made of.

The dataclasses come first; below them, the logic that fills them from the database. `render`
and `web` consume only these plain, frozen values, never ORM objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.languages import translation_language
from newsletter.models import Digest, Paper, Topic
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

    @property
    def more(self) -> int:
        return self.total - len(self.papers) - len(self.titles_only)

    @property
    def matched(self) -> int:
        """Every new paper this topic matched, wherever it is listed."""
        return self.total + sum(count for _name, count in self.listed_under)


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
class TranslationOptions:
    """How a digest shows translations: whether titles too, and this run's failures."""

    titles: bool = False
    notes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """Reader notes by (arXiv id, translation language), for abstracts that failed this run."""


# ---------------------------------------------------------------- filling them from the database


@dataclass(frozen=True)
class Segment:
    """Subscribers who receive the same body: same topics, same language."""

    topic_ids: tuple[int, ...]
    language: str
    subscriber_ids: tuple[int, ...]
    content: DigestContent


def draft_digest(session: Session, issue_date: date, now: datetime) -> Digest:
    """The digest of that day: the stored one, or a new one not yet added to the session.

    Windows are on the time a topic first matched a paper, not on arXiv's dates, so a paper
    that arXiv indexes late still lands in the next digest, and none lands in two.
    """
    digest = store.digest_on(session, issue_date)
    if digest is None:
        previous = store.latest_digest_before(session, issue_date)
        start = previous.window_end if previous is not None else None
        digest = Digest(issue_date=issue_date, window_start=start, window_end=now)
    return digest


def open_digest(session: Session, issue_date: date, now: datetime) -> Digest:
    """The digest of that day, stored on first call."""
    digest = draft_digest(session, issue_date, now)
    if digest.id is None:
        session.add(digest)
        session.flush()
    return digest


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
    )


def new_papers_by_topic(
    session: Session, digest: Digest, topics: list[Topic]
) -> dict[int, list[PaperItem]]:
    """Every topic's papers in the digest's window, newest first, uncapped (one query)."""
    papers: dict[int, list[PaperItem]] = {topic.id: [] for topic in topics}
    items: dict[int, PaperItem] = {}  # a paper in two topics is one PaperItem
    rows = store.papers_of_topics_between(session, papers, digest.window_start, digest.window_end)
    for topic_id, paper in rows:
        if paper.id not in items:
            items[paper.id] = paper_item(paper)
        papers[topic_id].append(items[paper.id])
    return papers


def assemble(
    topics: list[Topic],
    papers: dict[int, list[PaperItem]],
    *,
    issue_date: date,
    cap: int | None,
    language: str,
    web_url: str,
    base_url: str,
    translations: Translations | None = None,
) -> DigestContent:
    """One body's content: a section per topic, each paper once (under its first topic), capped.

    With `translations`, the papers shown carry their translated abstract (or a note why not).
    """
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
        shown = own if cap is None else own[:cap]
        if translations is not None:
            shown = [translations.apply(item) for item in shown]
        sections.append(
            TopicSection(
                topic.name,
                topic.slug,
                topic.description,
                tuple(shown),
                len(own),
                listed_under=tuple(elsewhere.items()),
            )
        )
    return DigestContent(
        date=issue_date,
        sections=tuple(sections),
        language=language,
        web_url=web_url,
        base_url=base_url,
        topic_names=tuple(topic.name for topic in topics),
    )


def _with_also(item: PaperItem, also_in: list[str]) -> PaperItem:
    return replace(item, also_in=tuple(also_in)) if also_in else item


def digest_web_url(base_url: str, issue_date: date) -> str:
    return f"{base_url}/digests/{issue_date.isoformat()}"


def build_segments(
    session: Session,
    digest: Digest,
    *,
    cap: int,
    base_url: str,
    include_empty: bool = False,
    translation: TranslationOptions | None = None,
) -> list[Segment]:
    """Group active subscribers (not paused on the digest's day) by (topics, language) and
    assemble each group's content once.

    The list is streamed (subscriber ids, languages and topic ids, never whole subscribers),
    so memory holds an integer a subscriber. A group whose topics have nothing new is left
    out unless `include_empty` is set. With `translation`, a group reading another language
    than English gets the stored translations of its papers (looked up once per language).
    """
    groups: dict[SegmentKey, list[int]] = defaultdict(list)
    for subscriber_id, key in subscriber_segments(session, digest.issue_date):
        groups[key].append(subscriber_id)
    contents = SegmentContents(session, digest, cap=cap, base_url=base_url, translation=translation)
    contents.load_languages(session, {language for _topics, language in groups})
    segments = []
    for (topic_ids, language), subscriber_ids in groups.items():
        content = contents.content(topic_ids, language)
        if content.paper_count or include_empty:
            segments.append(Segment(topic_ids, language, tuple(subscriber_ids), content))
    return segments


SegmentKey = tuple[tuple[int, ...], str]
"""(topic ids in display order, language): who gets the same body."""


def subscriber_segments(session: Session, on: date) -> Iterator[tuple[int, SegmentKey]]:
    """(subscriber id, segment key) of every active subscriber not paused on `on`."""
    current, language, topic_ids = None, "", []
    for subscriber_id, row_language, topic_id in store.subscriber_topic_rows(session, on):
        if subscriber_id != current:
            if current is not None:
                yield current, (tuple(topic_ids), language)
            current, language, topic_ids = subscriber_id, row_language, []
        topic_ids.append(topic_id)
    if current is not None:
        yield current, (tuple(topic_ids), language)


class SegmentContents:
    """Each segment's content, assembled the first time it is asked for.

    The topics and the papers of the digest's window are read once; translations once per
    language (`load_languages`, inside a unit of work); then `content` needs no database, so
    a sender can find the content of any subscriber's segment without reading the list.
    """

    def __init__(
        self,
        session: Session,
        digest: Digest,
        *,
        cap: int,
        base_url: str,
        translation: TranslationOptions | None = None,
    ) -> None:
        self.issue_date = digest.issue_date
        self.cap = cap
        self.base_url = base_url
        self.translation = translation
        self.topics = {topic.id: topic for topic in store.list_topics(session)}
        self.papers = new_papers_by_topic(session, digest, list(self.topics.values()))
        self.web_url = digest_web_url(base_url, digest.issue_date)
        self._translations: dict[str | None, Translations | None] = {None: None}
        self._contents: dict[SegmentKey, DigestContent] = {}

    def load_languages(self, session: Session, languages: Iterable[str]) -> None:
        """Read the stored translations each of these reader languages needs, once each."""
        if self.translation is None:
            return
        arxiv_ids = {item.arxiv_id for items in self.papers.values() for item in items}
        for language in languages:
            target = translation_language(language)
            if target not in self._translations:
                self._translations[target] = stored_translations(
                    session, arxiv_ids, target, self.translation
                )

    def content(self, topic_ids: tuple[int, ...], language: str) -> DigestContent:
        """What the segment (these topics, this language) receives; topics since deleted are
        left out. Its language's translations must have been loaded."""
        key = (topic_ids, language)
        if key not in self._contents:
            target = translation_language(language) if self.translation is not None else None
            self._contents[key] = assemble(
                [self.topics[topic_id] for topic_id in topic_ids if topic_id in self.topics],
                self.papers,
                issue_date=self.issue_date,
                cap=self.cap,
                language=language,
                web_url=self.web_url,
                base_url=self.base_url,
                translations=self._translations[target],
            )
        return self._contents[key]


def stored_translations(
    session: Session,
    arxiv_ids: Iterable[str],
    language: str,
    options: TranslationOptions | None = None,
) -> Translations:
    """The stored translations of these papers into `language` (a translation language)."""
    options = options or TranslationOptions()
    rows = store.translations_of(session, arxiv_ids, language)
    return Translations(
        texts={arxiv_id: TranslatedText(row.abstract, row.title) for arxiv_id, row in rows.items()},
        notes={key: note for (key, lang), note in options.notes.items() if lang == language},
        titles=options.titles,
    )


def web_content(
    session: Session,
    digest: Digest,
    *,
    base_url: str,
    topics: list[Topic] | None = None,
    language: str = "en",
    translation: TranslationOptions | None = None,
) -> DigestContent:
    """The browser version of a digest: every paper of these topics (default: all topics).

    A subscriber's own version passes their topics and language; with `translation`, papers
    carry the stored translations into that language.
    """
    topics = store.list_topics(session) if topics is None else topics
    papers = new_papers_by_topic(session, digest, topics)
    target = translation_language(language) if translation is not None else None
    translations = None
    if target is not None:
        arxiv_ids = {item.arxiv_id for items in papers.values() for item in items}
        translations = stored_translations(session, arxiv_ids, target, translation)
    return assemble(
        topics,
        papers,
        issue_date=digest.issue_date,
        cap=None,
        language=language,
        web_url=digest_web_url(base_url, digest.issue_date),
        base_url=base_url,
        translations=translations,
    )
