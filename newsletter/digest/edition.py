"""One Edition: a digest as its readers see it, made in one place.

An `Edition` is read once from a digest (its topics, the papers of its window) under
`EditionOptions` (the cap, the links, whether translations show and why some abstracts are not
translated), then asked for "the content of these topics in this language": the email, the web
pages and the preview all take their `DigestContent` from it. The stored translations are read
once per language (`load_languages`, inside a unit of work); after that `content` needs no
database, so a sender can find any subscriber's body without reading the list.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.authors import FollowIndex, follow_key
from newsletter.config import Settings
from newsletter.digest.content import (
    CodeFound,
    DigestContent,
    PaperItem,
    TranslatedText,
    Translations,
    arranged,
    assemble,
    digest_web_url,
    paper_item,
)
from newsletter.languages import summary_language, translation_language
from newsletter.models import Digest, DigestKind, Topic

Notes = Mapping[tuple[str, str], str]
"""What readers are told about an abstract left in English, by (arXiv id, translation language)."""


@dataclass(frozen=True)
class EditionOptions:
    """How an edition shows its digest: the same for every reader of it."""

    cap: int | None
    """Papers shown per topic (the others are counted); None shows every one (web pages)."""
    base_url: str
    include_empty: bool = False
    """Readers whose topics have nothing new get a body too (NEWSLETTER_SEND_EMPTY)."""
    translated: bool = False
    """Readers of another language than English see the stored translations (a translator is
    configured); off, every abstract is the original and carries no note."""
    titles: bool = False
    """With translations, translated titles show under the English ones."""
    notes: Notes = field(default_factory=dict)
    """Why an abstract is not translated this time (the translation step's failures)."""
    ranked: bool = False
    """Readers with a ranking (`ranking.step`) get each section's papers in their own order:
    every body keeps its sections' whole pool of papers to pick from."""
    code_news_days: int = 0
    """Bodies list the papers their topics matched up to this many days before the window
    whose code was found in it ("Code released since"); 0: none."""
    summarized: bool = False
    """Readers see the stored one-sentence summaries in their language (a summarizer is
    configured): English readers too."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        every_paper: bool = False,
        include_empty: bool | None = None,
        notes: Notes | None = None,
    ) -> EditionOptions:
        """The options the settings give: NEWSLETTER_DIGEST_MAX_PER_TOPIC papers a topic (all of
        them with `every_paper`), links under NEWSLETTER_BASE_URL, NEWSLETTER_SEND_EMPTY unless
        `include_empty` says otherwise, translations when a translator is configured."""
        return cls(
            cap=None if every_paper else settings.digest_max_per_topic,
            base_url=settings.base_url,
            include_empty=settings.send_empty if include_empty is None else include_empty,
            translated=settings.translator != "none",
            titles=settings.translate_titles,
            notes=dict(notes or {}),
            ranked=settings.ranking,
            code_news_days=settings.code_news_days,
            summarized=settings.summarizer != "none",
        )


class Edition:
    """One digest's content for any reader: built once, asked per (topics, language)."""

    def __init__(
        self,
        digest: Digest,
        topics: Sequence[Topic],
        papers: Mapping[int, list[PaperItem]],
        options: EditionOptions,
    ) -> None:
        self.digest = digest
        self.digest_id: int | None = digest.id
        self.issue_date = digest.issue_date
        self.options = options
        self.topics = tuple(topics)
        """The topics read, in display order (every topic, unless `read` was given some)."""
        self.papers = papers
        """Each topic's papers of the digest's window, newest first, uncapped."""
        self.arxiv_ids = {
            item.paper_id: item.arxiv_id for items in papers.values() for item in items
        }
        """The arXiv id of each of these papers by its row id (rankings name row ids)."""
        self.web_url = digest_web_url(options.base_url, digest.path)
        self.since: date | None = None
        """A span's first day (`read` finds it): its emails say "since" that day."""
        self._by_id = {topic.id: topic for topic in self.topics}
        self.follows: FollowIndex[PaperItem] = FollowIndex(())
        """The window's papers by their authors, for readers who follow some (`read_follows`)."""
        self._translations: dict[str | None, Translations | None] = {None: None}
        self._summaries: dict[str, Mapping[str, str]] = {}
        """The stored summaries of the papers, by summary language, then arXiv id."""
        self._outlines: dict[tuple, DigestContent] = {}
        self._contents: dict[tuple, DigestContent] = {}
        self.code_found: CodeFound = {}
        """Papers whose code was found in the window, by topic (`read_code_news`)."""
        self._followed: dict[str, PaperItem] = {}
        self._has_rankings: bool | None = None

    @classmethod
    def read(
        cls,
        session: Session,
        digest: Digest,
        options: EditionOptions,
        *,
        topics: Sequence[Topic] | None = None,
        languages: Iterable[str] = (),
    ) -> Edition:
        """The edition of `digest`: every topic (or these), their papers in one query, and the
        stored translations these reader languages need."""
        topics = store.list_topics(session) if topics is None else list(topics)
        edition = cls(digest, topics, new_papers_by_topic(session, digest, topics), options)
        if digest.kind == DigestKind.span:
            edition.since = store.first_day_after(session, digest.window_start)
        edition.read_follows(session)
        edition.read_code_news(session)
        edition.load_languages(session, languages)
        return edition

    @cached_property  # asked once per message by a sender (`code_since`)
    def code_news_from(self) -> datetime | None:
        """The earliest first match "Code released since" looks back to:
        NEWSLETTER_CODE_NEWS_DAYS before the window; None: it looks nowhere (set to 0, or the
        first digest)."""
        start, days = self.digest.window_start, self.options.code_news_days
        return None if start is None or not days else start - timedelta(days=days)

    def code_since(self, joined: datetime) -> datetime | None:
        """Since when a reader who joined then had this digest's topics' papers: the start of
        the day before they joined (their first digest held the newest daily one), or None when
        that is before the code news' look-back (most readers: one body for all)."""
        look_back = self.code_news_from
        if look_back is None or joined <= look_back:
            return None
        day = joined.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=1)

    def read_code_news(self, session: Session, since: datetime | None = None) -> None:
        """Read, for every topic in one query, the papers whose first code link was found in
        the digest's window and that the topic matched in (`since`, window start]; `since`
        defaults to NEWSLETTER_CODE_NEWS_DAYS before the window (none read when that is 0).
        A body then lists those its reader had (`content`'s `code_since`)."""
        start, since = self.digest.window_start, since or self.code_news_from
        if start is None or since is None:
            self.code_found = {}
            return
        found: dict[int, list[tuple[PaperItem, datetime]]] = {}
        items: dict[int, PaperItem] = {}
        rows = store.code_released_between(
            session, self.topic_ids, start, self.digest.window_end, since
        )
        for topic_id, paper, linked in rows:
            if paper.id not in items:
                items[paper.id] = paper_item(paper)
            found.setdefault(topic_id, []).append((items[paper.id], linked))
        self.code_found = found

    def read_follows(self, session: Session) -> None:
        """Index the papers first seen in the digest's window by their authors (a followed
        author's paper arrives whatever its topics)."""
        if self.digest.window_end is None:
            return
        keys = {follow_key(name) for name in store.followed_names(session)}
        if not keys:
            return  # nobody follows anyone: nothing to index
        known = {item.arxiv_id: item for items in self.papers.values() for item in items}
        items = [
            known.get(paper.arxiv_id) or paper_item(paper)
            for paper in store.papers_first_seen_between(
                session, self.digest.window_start, self.digest.window_end
            )
        ]
        every = FollowIndex((item, item.authors) for item in items)
        hits = sorted({position for key in keys for position in every.positions_for(key)})
        # Only the papers some reader's follow matches are kept (and their translations read).
        followed = [items[position] for position in hits]
        self.follows = FollowIndex((item, item.authors) for item in followed)
        self.arxiv_ids.update((item.paper_id, item.arxiv_id) for item in followed)
        self._followed = {item.arxiv_id: item for item in followed}

    def followed(self, name_keys: Iterable[str]) -> tuple[str, ...]:
        """The arXiv ids of the window's papers by these followed authors, newest first."""
        if not len(self.follows):
            return ()
        return tuple(item.arxiv_id for item in self.follows.papers_for(name_keys))

    def followed_by(self, session: Session, subscriber_ids: Sequence[int]) -> dict[int, tuple]:
        """The window's papers by authors each of these readers follows (arXiv ids), for
        those who have some."""
        if not len(self.follows):
            return {}
        found = {}
        for subscriber_id, keys in store.follow_keys_of(session, subscriber_ids).items():
            papers = self.followed(keys)
            if papers:
                found[subscriber_id] = papers
        return found

    @property
    def topic_ids(self) -> tuple[int, ...]:
        return tuple(self._by_id)

    def with_notes(self, notes: Notes) -> Edition:
        """The same digest, its readers told why these abstracts are not translated; the
        translations are read again (the step that failed on these stored the others)."""
        edition = copy.copy(self)  # its papers, follows and rankings as read
        edition.options = replace(self.options, notes=dict(notes))
        edition._translations, edition._summaries, edition._contents = {None: None}, {}, {}
        return edition

    def afresh(self) -> Edition:
        """The same digest, its papers as read, its translations and whether readers have
        rankings to be read again (more may have been stored since)."""
        edition = self.with_notes({})
        edition._has_rankings = None
        return edition

    def for_digest(self, session: Session, digest: Digest) -> Edition:
        """Another digest's edition under the same options, with the same topics (not read
        again)."""
        return Edition.read(session, digest, self.options, topics=self.topics)

    def load_languages(self, session: Session, languages: Iterable[str]) -> None:
        """Read the stored translations and summaries each of these reader languages needs,
        once each (English summaries always: the edition's content is English by default)."""
        if not (self.options.translated or self.options.summarized):
            return
        arxiv_ids = {item.arxiv_id for items in self.papers.values() for item in items}
        arxiv_ids.update(self._followed)
        languages = set(languages)
        if self.options.translated:
            for language in languages:
                target = translation_language(language)
                if target not in self._translations:
                    self._translations[target] = self._stored(session, arxiv_ids, target)
        if self.options.summarized:
            for target in {"en"} | {summary_language(language) for language in languages}:
                if target not in self._summaries:
                    self._summaries[target] = store.summaries_of(session, arxiv_ids, target)

    def content(
        self,
        topic_ids: Sequence[int],
        language: str = "en",
        followed: Sequence[str] = (),
        code_since: datetime | None = None,
    ) -> DigestContent:
        """What a reader of these topics (in display order) and this language receives, with
        first the `followed` papers (arXiv ids: by authors they follow); topics since deleted
        are left out. With translations on, the language's must have been loaded
        (`load_languages`). Under "Code released since": the papers `read_code_news` read
        that these topics matched after `code_since` (None: all of them)."""
        key = (tuple(topic_ids), language, tuple(followed), code_since)
        if key not in self._contents:
            target = translation_language(language) if self.options.translated else None
            if target not in self._translations:
                raise LookupError(f"the translations into {target} are not loaded")
            summaries = None
            if self.options.summarized:
                summaries = self._summaries.get(summary_language(language))
                if summaries is None:
                    raise LookupError(
                        f"the summaries in {summary_language(language)} are not loaded"
                    )
            self._contents[key] = self._assemble(*key, self._translations[target], summaries)
        return self._contents[key]

    def shown(self, topic_ids: Sequence[int], followed: Sequence[str] = ()) -> list[str]:
        """The arXiv ids a body of these topics shows, whatever its language, in order (its
        English content, kept: the English readers' segments are then assembled once a send).
        When readers of the digest are ranked (`ranked`), any of a section's papers may be
        shown: all of them, those shown newest first first."""
        content = self._outline(tuple(topic_ids), tuple(followed))
        shown = [item.arxiv_id for section in content.sections for item in section.papers]
        if not self.ranked:
            return shown
        # First what newest first shows in every section (the readers not ranked), then the
        # rest a reader's order may pick: a translation budget spent runs out on those.
        return shown + [
            item.arxiv_id
            for section in content.sections
            for item in section.pool[len(section.papers) :]
        ]

    def _outline(self, topic_ids: tuple[int, ...], followed: tuple[str, ...]) -> DigestContent:
        """Which papers a body of these topics shows: its English content, or, with summaries
        (which are not read before they are made), that content without them."""
        if not self.options.summarized:
            return self.content(topic_ids, "en", followed)
        key = (topic_ids, followed)
        if key not in self._outlines:
            self._outlines[key] = self._assemble(topic_ids, "en", followed, None, None)
        return self._outlines[key]

    def content_for(
        self,
        session: Session,
        subscriber_id: int,
        topic_ids: Sequence[int],
        language: str,
        joined: datetime | None = None,
    ) -> DigestContent:
        """What one reader (who `joined` then) receives: their topics in their language, the
        papers of authors they follow first, each section in their own order when they have
        one, and the code released since for the papers they had."""
        followed = self.followed_by(session, [subscriber_id]).get(subscriber_id, ())
        code_since = None if joined is None else self.code_since(joined)
        content = self.content(topic_ids, language, followed, code_since)
        order = self.rankings(session, [subscriber_id]).get(subscriber_id)
        return arranged(content, order) if order else content

    @property
    def ranked(self) -> bool:
        """Some readers get this edition's papers in their own order (as far as known: see
        `has_rankings`): its bodies must fit whichever papers an order puts first."""
        return bool(self.options.ranked and self._has_rankings)

    def has_rankings(self, session: Session) -> bool:
        """Whether any reader of the digest has their own order of its papers (read once)."""
        if self._has_rankings is None:
            self._has_rankings = self.digest_id is not None and store.has_rankings(
                session, self.digest_id
            )
        return self._has_rankings

    def rankings(self, session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
        """These readers' orders of the digest's papers (arXiv ids, best first), for those who
        have one."""
        if not self.options.ranked or not self.has_rankings(session):
            return {}
        arxiv_ids = self.arxiv_ids
        return {
            subscriber_id: [arxiv_ids[paper_id] for paper_id in order if paper_id in arxiv_ids]
            for subscriber_id, order in store.rankings_of(
                session, self.digest_id, subscriber_ids
            ).items()
        }

    def _assemble(
        self,
        topic_ids: tuple[int, ...],
        language: str,
        followed: tuple[str, ...],
        code_since: datetime | None,
        translations: Translations | None,
        summaries: Mapping[str, str] | None = None,
    ) -> DigestContent:
        return assemble(
            [self._by_id[topic_id] for topic_id in topic_ids if topic_id in self._by_id],
            self.papers,
            issue_date=self.issue_date,
            since=self.since,
            cap=self.options.cap,
            language=language,
            web_url=self.web_url,
            base_url=self.options.base_url,
            translations=translations,
            summaries=summaries,
            pool=self.options.ranked,
            followed=[
                self._followed[arxiv_id] for arxiv_id in followed if arxiv_id in self._followed
            ],
            code_found=self.code_found,
            code_since=code_since,
        )

    def _stored(self, session: Session, arxiv_ids: Iterable[str], language: str) -> Translations:
        """The stored translations of these papers into `language` (a translation language)."""
        rows = store.translations_of(session, arxiv_ids, language)
        notes = self.options.notes.items()
        return Translations(
            texts={key: TranslatedText(row.abstract, row.title) for key, row in rows.items()},
            notes={key: note for (key, lang), note in notes if lang == language},
            titles=self.options.titles,
        )


def new_papers_by_topic(
    session: Session, digest: Digest, topics: Sequence[Topic]
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
