"""The daily ranking step: every reader with enough signal gets their order of the digest's
papers, stored once (`ReaderRanking`) and read by whatever assembles their email.

    report = rank_digest(settings, digest.id)

Features are made for the papers that have none (once per paper); the IDF is counted from the
features of the papers first seen in the last `CORPUS_DAYS` days; then readers are read a chunk
at a time (memory stays flat however many there are), each chunk's readers trained (one model
per distinct signal), scored and written in one transaction. Readers ranked already are left
alone unless `rerank` is asked for, so a rerun after an interruption goes on where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.ranking import SCHEME

if TYPE_CHECKING:  # numpy, scipy and scikit-learn load only when someone is ranked
    from newsletter.ranking.features import Idf
    from newsletter.ranking.model import DayRanker, PaperRows, Signal

log = logging.getLogger(__name__)

CORPUS_DAYS = 90
"""The papers whose features give the IDF and the background sample: those first seen in the
last 90 days (a few thousand to a few tens of thousands; counted each day in a second or so)."""

READER_CHUNK = 1_000
"""Readers ranked, and written, in one transaction."""

KEEP_RANKINGS = timedelta(days=14)
"""Rankings of digests older than this (before the one ranked) are dropped: a resend or the web
version of an older digest shows its papers newest first."""

FEATURE_BATCH = 1_000
"""Papers whose features are made and stored in one transaction."""


@dataclass
class RankingReport:
    """What one ranking step did."""

    readers_ranked: int = 0
    already_ranked: int = 0
    """Readers with a ranking of this digest from an earlier run, left as they were."""
    too_little_signal: int = 0
    """Active readers with ranking on and fewer than NEWSLETTER_RANKING_MIN_SIGNAL positive
    papers: newest first for them."""
    nothing_new: int = 0
    """Readers with signal but no paper in this digest."""
    models_trained: int = 0
    rankings_dropped: int = 0
    """Rows of digests older than `KEEP_RANKINGS` deleted."""
    features_computed: int = 0
    seconds: float = 0.0
    off: bool = False
    """NEWSLETTER_RANKING is off: nothing was ranked."""

    def summary(self) -> str:
        if self.off:
            return "ranking is off (NEWSLETTER_RANKING=false): every reader gets newest first"
        return (
            f"ranked {self.readers_ranked} readers ({self.models_trained} models), "
            f"{self.already_ranked} ranked already, {self.too_little_signal} with too little "
            f"signal, {self.nothing_new} with nothing new; features of "
            f"{self.features_computed} papers made; {self.seconds:.1f} s"
        )


def rank_digest(
    settings: Settings,
    digest_id: int,
    *,
    rerank: bool = False,
    only: Collection[int] | None = None,
) -> RankingReport:
    """Store the order of the digest's papers for every active reader with ranking on and at
    least NEWSLETTER_RANKING_MIN_SIGNAL positive papers (of `only`, when given: the readers
    a span is made for); `rerank` ranks again those ranked."""
    started = time.perf_counter()
    report = RankingReport(off=not settings.ranking)
    if report.off:
        return report
    with session_scope(settings) as session:
        if not store.readers_with_signal(session, settings.ranking_min_signal, 0, 1):
            report.too_little_signal = store.count_ranking_readers(session)
            return report  # nobody to rank: no features, no model, not even their imports
    report.features_computed = compute_missing_features(settings)
    with session_scope(settings) as session:
        day = _day_of(session, digest_id)
        total = store.count_ranking_readers(session)
    considered, after = 0, 0
    while True:
        with session_scope(settings) as session:
            readers = store.readers_with_signal(
                session, settings.ranking_min_signal, after, READER_CHUNK
            )
            if not readers:
                break
            after = readers[-1]
            if only is not None:
                readers = [reader for reader in readers if reader in only]
            considered += len(readers)
            _rank_chunk(session, day, readers, rerank, report, settings.digest_max_per_topic)
    if only is not None:
        total = len(only)
    report.too_little_signal += total - considered
    report.models_trained = day.ranker.trained
    with session_scope(settings) as session:
        keep_from = store.digest_by_id(session, digest_id).issue_date - KEEP_RANKINGS
        report.rankings_dropped = store.delete_rankings_before(session, keep_from)
    report.seconds = time.perf_counter() - started
    log.info("digest %s: %s", digest_id, report.summary())
    return report


def compute_missing_features(settings: Settings) -> int:
    """Make and store the features of every paper that has none of this `SCHEME`; how many."""
    from newsletter.ranking.features import compute_features

    made = 0
    while True:
        with session_scope(settings) as session:
            papers = store.papers_without_features(session, SCHEME, FEATURE_BATCH)
            if not papers:
                return made
            data = compute_features([(title, abstract) for _, title, abstract in papers])
            store.put_features(
                session, SCHEME, [(p[0], d) for p, d in zip(papers, data, strict=True)]
            )
            made += len(papers)


@dataclass
class _Day:
    """What every reader of one digest is ranked with."""

    digest_id: int
    idf: Idf
    ranker: DayRanker
    topic_papers: dict[int, list[int]]
    """Each topic's papers of the digest, newest first."""
    untopical: list[int]
    """Papers first seen within the digest's window that no topic matched in it (papers of
    followed authors): every ranked reader's list carries them, newest first among the rest."""
    newest: dict[int, int]
    """Each candidate's place in the digest, newest first."""


def _day_of(session: Session, digest_id: int) -> _Day:
    from newsletter.ranking.features import Idf
    from newsletter.ranking.model import DayRanker, background_sample

    digest = store.digest_by_id(session, digest_id)
    start, end = digest.window_start, digest.window_end
    topic_ids = [topic.id for topic in store.list_topics(session)]
    topic_papers: dict[int, list[int]] = defaultdict(list)
    dated: dict[int, datetime] = {}
    for topic_id, paper in store.papers_of_topics_between(session, topic_ids, start, end):
        topic_papers[topic_id].append(paper.id)
        dated[paper.id] = paper.published
    untopical = []
    for paper_id, published in store.paper_dates_first_seen_between(session, start, end):
        if paper_id not in dated:
            untopical.append(paper_id)
            dated[paper_id] = published
    newest = sorted(dated, key=lambda paper_id: (dated[paper_id], paper_id), reverse=True)
    corpus: list[int] = []

    def corpus_rows():
        since = end - timedelta(days=CORPUS_DAYS)
        for paper_id, data in store.features_seen_between(session, SCHEME, since, end):
            corpus.append(paper_id)
            yield data

    idf = Idf.of(corpus_rows())
    background = _rows(session, idf, background_sample(corpus))
    return _Day(
        digest_id=digest_id,
        idf=idf,
        ranker=DayRanker(background, _rows(session, idf, newest)),
        topic_papers=dict(topic_papers),
        untopical=untopical,
        newest={paper_id: place for place, paper_id in enumerate(newest)},
    )


def _rows(session: Session, idf: Idf, paper_ids: list[int]) -> PaperRows:
    """The TF-IDF rows of these papers (those with stored features), in the order given."""
    from newsletter.ranking.features import count_matrix
    from newsletter.ranking.model import PaperRows

    found = store.features_of(session, SCHEME, paper_ids)
    ids = [paper_id for paper_id in paper_ids if paper_id in found]
    return PaperRows(ids, idf.weigh(count_matrix(found[i] for i in ids)))


def _rank_chunk(
    session: Session,
    day: _Day,
    readers: list[int],
    rerank: bool,
    report: RankingReport,
    cap: int,
) -> None:
    from newsletter.ranking.model import Signal

    if not rerank:
        done = store.ranked_reader_ids(session, day.digest_id, readers)
        report.already_ranked += len(done)
        readers = [reader for reader in readers if reader not in done]
    signal_rows: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for subscriber_id, paper_id, kind in store.reader_signals(session, readers):
        signal_rows[subscriber_id].append((paper_id, kind == store.POSITIVE))
    topics = store.topic_ids_of(session, readers)
    signals = {reader: Signal.of(signal_rows[reader]) for reader in readers}
    papers = _rows(session, day.idf, sorted({i for s in signals.values() for i in _all(s)}))
    rankings = []
    for reader in readers:
        candidates = _candidates(day, topics.get(reader, ()))
        if not candidates:
            report.nothing_new += 1
            continue
        if not any(paper_id in papers for paper_id in signals[reader].positive):
            report.too_little_signal += 1  # none of its positive papers has features
            continue
        order = day.ranker.rank(signals[reader], papers, candidates)
        rankings.append((reader, _kept(order, day, topics.get(reader, ()), cap)))
    store.put_rankings(session, day.digest_id, rankings)
    report.readers_ranked += len(rankings)


def _kept(order: list[int], day: _Day, topic_ids, cap: int) -> list[int]:
    """The part of a reader's order an email can show: each of their topics' first `cap`
    papers in that order, and the first `cap` of the papers no topic matched (their followed
    authors'), best first. (A row of every candidate, a few hundred ids a reader a day, would
    be read by every sender and kept for two weeks for nothing.)"""
    groups = [set(day.topic_papers.get(topic_id, ())) for topic_id in topic_ids]
    groups.append(set(day.untopical))
    taken = [0] * len(groups)
    kept = []
    for paper_id in order:
        wanted = False
        for number, group in enumerate(groups):
            if paper_id in group and taken[number] < cap:
                taken[number] += 1
                wanted = True
        if wanted:
            kept.append(paper_id)
    return kept


def _all(signal: Signal) -> frozenset[int]:
    return signal.positive | signal.negative


def _candidates(day: _Day, topic_ids) -> list[int]:
    """The reader's papers of the digest, newest first: their topics' and the untopical ones."""
    papers = {paper_id for topic_id in topic_ids for paper_id in day.topic_papers.get(topic_id, ())}
    papers.update(day.untopical)
    return sorted(papers, key=day.newest.__getitem__)
