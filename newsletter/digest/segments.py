"""Who receives which body, filled from the database: segments of subscribers (same topics,
same language), each with its content; the browser version of a digest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.digest.content import (
    DigestContent,
    PaperItem,
    TranslatedText,
    Translations,
    assemble,
    digest_web_url,
    paper_item,
)
from newsletter.languages import translation_language
from newsletter.models import Digest, Topic


@dataclass(frozen=True)
class TranslationOptions:
    """How a digest shows translations: whether titles too, and this run's failures."""

    titles: bool = False
    notes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """Reader notes by (arXiv id, translation language), for abstracts that failed this run."""


@dataclass(frozen=True)
class Segment:
    """Subscribers who receive the same body: same topics, same language."""

    topic_ids: tuple[int, ...]
    language: str
    subscriber_ids: tuple[int, ...]
    content: DigestContent


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
