"""Fetching: each topic's new papers from arXiv, stored and linked to the topic, then the new
papers of the authors readers follow; one topic's failure (or the follows') never stopping the
others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial

from newsletter import metrics, store
from newsletter.authors import FollowIndex, follow_key
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.errors import FetchError, InvalidInput
from newsletter.models import utcnow
from newsletter.sources.arxiv import STOP_AFTER_KNOWN, ArxivSource
from newsletter.sources.arxiv_query import author_queries, build_query
from newsletter.sources.papers import FetchedPaper

log = logging.getLogger(__name__)

FOLLOWS = "people you follow"
"""The fetch report's entry for the papers of followed authors."""


@dataclass
class TopicFetch:
    topic: str
    fetched: int = 0
    new_papers: int = 0
    new_links: int = 0
    error: str | None = None
    skipped: list[str] = field(default_factory=list)
    """Entries left out, each "<id>: <reason>" (not a paper we can read or store)."""


@dataclass
class FetchReport:
    topics: list[TopicFetch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(entry.error is None for entry in self.topics)

    @property
    def errors(self) -> list[str]:
        return [entry.error for entry in self.topics if entry.error]


def arxiv_source(settings: Settings) -> ArxivSource:
    return ArxivSource(
        settings.arxiv_api_url,
        delay=settings.arxiv_delay,
        timeout=settings.arxiv_timeout,
        retries=settings.arxiv_retries,
        backoff=settings.arxiv_backoff,
        page_size=settings.arxiv_page_size,
    )


def topic_query(topic) -> str:
    return build_query(topic.keywords, topic.categories, topic.excludes, topic.raw_query)


def fetch(
    settings: Settings, names: Iterable[str] = (), source: ArxivSource | None = None
) -> FetchReport:
    """Fetch every topic's (or the named topics') new papers, then (unless topics are named)
    the followed authors' (`fetch_follows`); one topic's failure stops no other.

    Whatever a topic fetched before arXiv failed is stored all the same.
    """
    source = source or arxiv_source(settings)
    started = utcnow()
    with session_scope(settings) as session:
        topics = store.get_topics(session, names) if names else store.list_topics(session)
        plan = [(t.id, t.name, topic_query(t), t.fetch_incomplete) for t in topics]
    report = FetchReport()
    for topic_id, name, query, catching_up in plan:
        entry = TopicFetch(name)
        report.topics.append(entry)
        with session_scope(settings) as session:
            known = store.linked_arxiv_ids(session, topic_id)
        papers: dict[str, FetchedPaper] = {}
        # After a fetch that failed half-way, paging must not stop at the papers it stored:
        # the ones it missed come after them.
        stop_after_known = None if catching_up else STOP_AFTER_KNOWN
        try:
            for paper in source.newest(
                query,
                settings.fetch_max_per_topic,
                is_known=known.__contains__,
                stop_after_known=stop_after_known,
                skipped=entry.skipped,
            ):
                # arXiv's paging can repeat an entry across pages: keep it once, and count
                # the repeat as known so that paging still stops.
                papers.setdefault(paper.arxiv_id, paper)
                known.add(paper.arxiv_id)
        except FetchError as error:
            entry.error = f"topic {name!r}: {error}"
        except Exception as error:  # a bug of ours on one topic's answer: not every topic's end
            log.debug("fetching topic %r failed", name, exc_info=True)
            entry.error = f"topic {name!r}: {type(error).__name__}: {error}"
        entry.fetched = len(papers)
        saved = save_fetched(settings, topic_id, list(papers.values()))
        entry.new_papers, entry.new_links = saved.new_papers, saved.new_links
        entry.skipped += saved.rejected
        # Stopped after storing some papers (or while catching up already): the next fetch
        # reads on past them. Stopped before any: nothing is behind a known paper.
        incomplete = entry.error is not None and (bool(papers) or catching_up)
        with session_scope(settings) as session:
            store.set_fetch_incomplete(session, topic_id, incomplete)
    if not names:
        followed = fetch_follows(settings, source, started)
        if followed is not None:
            report.topics.append(followed)
    metrics.record_fetch(report)
    return report


def fetch_follows(
    settings: Settings, source: ArxivSource, started: datetime | None = None
) -> TopicFetch | None:
    """The new papers of the authors active readers follow (None when nobody follows anyone).

    Their `au:` terms go to arXiv in batches (`NEWSLETTER_FOLLOW_BATCH` names a request,
    through the same source, so the 3 s rule holds across topics and follows). The terms are
    broad (surname and initial): only papers on which a followed person really is an author
    (`authors.FollowIndex`) are stored, linked to no topic. Paging stops as a topic's does, once
    past the papers stored before this fetch: at `STOP_AFTER_KNOWN` followed papers in a row
    stored already (papers by no one followed neither count nor break the run). A batch may
    read `NEWSLETTER_FETCH_MAX_PER_TOPIC` papers for each of its names, at most
    `FOLLOW_BATCH_MAX` in all: broad terms bring many papers by namesakes.
    """
    with session_scope(settings) as session:
        names = store.followed_names(session)
    if not names:
        return None
    entry = TopicFetch(FOLLOWS)
    keys = {follow_key(name) for name in names}
    # Papers stored since the fetch began (by today's topics, say) are not "known" ones.
    started = started or utcnow()
    papers: dict[str, FetchedPaper] = {}
    errors: list[str] = []
    for query in author_queries(names, settings.follow_batch):
        try:
            _followed_papers(settings, source, query, keys, papers, entry.skipped, started)
        except FetchError as error:  # one batch's failure: the other batches are still asked
            errors.append(str(error))
        except Exception as error:  # a bug of ours on one answer: not the whole fetch's end
            log.debug("fetching followed authors failed", exc_info=True)
            errors.append(f"{type(error).__name__}: {error}")
    if errors:
        entry.error = f"{FOLLOWS}: {'; '.join(errors)}"
    entry.fetched = len(papers)
    saved = save_fetched(settings, None, list(papers.values()))
    entry.new_papers = saved.new_papers
    entry.skipped += saved.rejected
    return entry


def _followed_papers(
    settings: Settings,
    source: ArxivSource,
    query: str,
    keys: set[str],
    found: dict[str, FetchedPaper],
    skipped: list[str],
    started: datetime,
) -> None:
    """Into `found`, the papers of one `au:` query on which someone followed is an author (as
    they come: a failure on a later page keeps the earlier ones)."""
    in_a_row = 0
    terms = query.count(" OR ") + 1
    limit = min(settings.fetch_max_per_topic * terms, FOLLOW_BATCH_MAX)
    results = source.newest(query, limit, stop_after_known=None, skipped=skipped)
    for paper in results:
        if not FollowIndex([(paper.arxiv_id, paper.authors)]).papers_for(keys):
            continue  # a namesake's: neither counts towards the stop nor breaks the run
        found.setdefault(paper.arxiv_id, paper)  # stored again: a newer version updates
        with session_scope(settings) as session:
            stored = store.papers_by_arxiv_ids(session, [paper.arxiv_id])
        known = any(row.first_seen_at < started for row in stored)
        in_a_row = in_a_row + 1 if known else 0
        if in_a_row >= STOP_AFTER_KNOWN:
            log.info("%s: %d known papers in a row: not fetching more", FOLLOWS, in_a_row)
            break


FOLLOW_BATCH_MAX = 1_000
"""Papers one batch of followed authors may read: `NEWSLETTER_FETCH_MAX_PER_TOPIC` a name, at
most this (a third of arXiv's 30,000-result limit, ten pages of 100, 30 s at the 3 s rule)."""


@dataclass
class SavedPapers:
    new_papers: int = 0
    new_links: int = 0
    rejected: list[str] = field(default_factory=list)
    """Papers the database refused, each "<id>: <reason>"."""


def save_fetched(
    settings: Settings,
    topic_id: int | None,
    papers: list[FetchedPaper],
    *,
    now: datetime | None = None,
) -> SavedPapers:
    """Store papers once and link them to the topic (to none for a followed author's), each in
    a savepoint of its own: one the database refuses is reported and the others are kept,
    alike on SQLite and PostgreSQL. `now` is when they are first seen (default: this
    moment)."""
    now = now or utcnow()
    saved = SavedPapers()
    with session_scope(settings) as session:
        for fetched in papers:
            values = paper_values(fetched)
            try:
                created, linked = store.in_savepoint(
                    session, partial(_store_one, session, topic_id, values, now)
                )
            except InvalidInput as error:
                saved.rejected.append(f"{fetched.arxiv_id}: not stored: {error}")
                continue
            saved.new_papers += created
            saved.new_links += linked
    return saved


def paper_values(fetched: FetchedPaper) -> dict:
    """A fetched paper as `store.upsert_paper` takes it (lists where the columns hold JSON)."""
    values = asdict(fetched)
    values["authors"] = list(fetched.authors)
    values["categories"] = list(fetched.categories)
    values["code_urls"] = list(fetched.code_urls)
    return values


def _store_one(session, topic_id: int | None, values: dict, now: datetime) -> tuple[bool, bool]:
    paper, created = store.upsert_paper(session, values, now)
    if created:
        paper.first_seen_at = now
    if topic_id is None:
        return created, False
    return created, store.link_paper(session, topic_id, paper.id, now)
