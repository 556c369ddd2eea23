"""Ranking: papers' stored features, what readers told us (their signal), and each reader's
order of a digest's papers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime

from sqlalchemy import and_, case, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from newsletter.models import (
    Digest,
    Paper,
    PaperFeatures,
    Rating,
    ReaderPaper,
    ReaderRanking,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
)
from newsletter.store.subscribers import IN_LIST_LIMIT, STREAM_CHUNK

POSITIVE, NEGATIVE = "positive", "negative"
"""The kinds of signal: a paper the reader saved, asked for more of or named as a seed; a paper
they asked for less of (a "less like this" outweighs a save: it is the later, plainer word)."""

_NEGATIVE = ReaderPaper.rating == int(Rating.less)
_POSITIVE = and_(
    or_(ReaderPaper.rating.is_(None), ReaderPaper.rating != int(Rating.less)),
    or_(
        ReaderPaper.saved_at.is_not(None),
        ReaderPaper.rating == int(Rating.more),
        ReaderPaper.seed.is_(True),
    ),
)
_RANKED_READER = and_(Subscriber.status == SubscriberStatus.active, Subscriber.ranking.is_(True))


def _chunks(values: Iterable[int]) -> Iterator[list[int]]:
    wanted = sorted(set(values))
    for start in range(0, len(wanted), IN_LIST_LIMIT):
        yield wanted[start : start + IN_LIST_LIMIT]


# ---------------------------------------------------------------- features


def papers_without_features(
    session: Session, scheme: str, limit: int
) -> list[tuple[int, str, str]]:
    """(id, title, abstract) of up to `limit` papers with no features of `scheme`, by id."""
    query = (
        select(Paper.id, Paper.title, Paper.abstract)
        .outerjoin(
            PaperFeatures,
            and_(PaperFeatures.paper_id == Paper.id, PaperFeatures.scheme == scheme),
        )
        .where(PaperFeatures.paper_id.is_(None))
        .order_by(Paper.id)
        .limit(limit)
    )
    return [(paper_id, title, abstract) for paper_id, title, abstract in session.execute(query)]


def put_features(session: Session, scheme: str, rows: Sequence[tuple[int, bytes]]) -> None:
    """Store (paper id, data) features of `scheme`, replacing what those papers had."""
    for chunk in _chunks(paper_id for paper_id, _ in rows):
        session.execute(delete(PaperFeatures).where(PaperFeatures.paper_id.in_(chunk)))
    if rows:
        session.execute(
            insert(PaperFeatures),
            [{"paper_id": i, "scheme": scheme, "data": data} for i, data in rows],
        )


def features_of(session: Session, scheme: str, paper_ids: Iterable[int]) -> dict[int, bytes]:
    """The stored features of `scheme` of these papers, by paper id (those without left out)."""
    found: dict[int, bytes] = {}
    for chunk in _chunks(paper_ids):
        rows = session.execute(
            select(PaperFeatures.paper_id, PaperFeatures.data).where(
                PaperFeatures.paper_id.in_(chunk), PaperFeatures.scheme == scheme
            )
        )
        found.update((paper_id, bytes(data)) for paper_id, data in rows)
    return found


def features_seen_between(
    session: Session, scheme: str, start: datetime, end: datetime
) -> Iterator[tuple[int, bytes]]:
    """(paper id, features of `scheme`) of the papers first seen in (start, end], streamed."""
    query = (
        select(PaperFeatures.paper_id, PaperFeatures.data)
        .join(Paper, Paper.id == PaperFeatures.paper_id)
        .where(
            PaperFeatures.scheme == scheme, Paper.first_seen_at > start, Paper.first_seen_at <= end
        )
        .order_by(PaperFeatures.paper_id)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    for paper_id, data in session.execute(query):
        yield paper_id, bytes(data)


def paper_dates_first_seen_between(
    session: Session, start: datetime | None, end: datetime
) -> list[tuple[int, datetime]]:
    """(id, published) of the papers first seen in (start, end], newest submission first."""
    query = select(Paper.id, Paper.published).where(Paper.first_seen_at <= end)
    if start is not None:
        query = query.where(Paper.first_seen_at > start)
    query = query.order_by(Paper.published.desc(), Paper.arxiv_id.desc())
    return [(paper_id, published) for paper_id, published in session.execute(query)]


# ---------------------------------------------------------------- readers and their signal


def count_ranking_readers(session: Session) -> int:
    """Active subscribers whose ranking is on (whatever their signal)."""
    return session.scalar(select(func.count()).select_from(Subscriber).where(_RANKED_READER))


def readers_with_signal(session: Session, min_positive: int, after: int, limit: int) -> list[int]:
    """Ids above `after` of up to `limit` active subscribers with ranking on and at least
    `min_positive` positive papers, ascending: the readers to rank, a chunk at a time."""
    query = (
        select(ReaderPaper.subscriber_id)
        .join(Subscriber, Subscriber.id == ReaderPaper.subscriber_id)
        .where(_RANKED_READER, _POSITIVE, ReaderPaper.subscriber_id > after)
        .group_by(ReaderPaper.subscriber_id)
        .having(func.count() >= min_positive)
        .order_by(ReaderPaper.subscriber_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def reader_signals(
    session: Session, subscriber_ids: Iterable[int]
) -> Iterator[tuple[int, int, str]]:
    """(subscriber id, paper id, `POSITIVE` or `NEGATIVE`) of these readers' rated, saved and
    seeded papers, by subscriber."""
    kind = case((_NEGATIVE, NEGATIVE), else_=POSITIVE)
    for chunk in _chunks(subscriber_ids):
        query = (
            select(ReaderPaper.subscriber_id, ReaderPaper.paper_id, kind)
            .where(ReaderPaper.subscriber_id.in_(chunk), or_(_NEGATIVE, _POSITIVE))
            .order_by(ReaderPaper.subscriber_id, ReaderPaper.paper_id)
        )
        yield from session.execute(query)


def topic_ids_of(session: Session, subscriber_ids: Iterable[int]) -> dict[int, set[int]]:
    """The topics each of these subscribers reads, by subscriber id (those with none left out)."""
    found: dict[int, set[int]] = {}
    for chunk in _chunks(subscriber_ids):
        rows = session.execute(
            select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id).where(
                SubscriberTopic.subscriber_id.in_(chunk)
            )
        )
        for subscriber_id, topic_id in rows:
            found.setdefault(subscriber_id, set()).add(topic_id)
    return found


# ---------------------------------------------------------------- rankings


def ranked_reader_ids(session: Session, digest_id: int, subscriber_ids: Iterable[int]) -> set[int]:
    """Those of these subscribers who have a ranking of the digest already."""
    found: set[int] = set()
    for chunk in _chunks(subscriber_ids):
        found.update(
            session.scalars(
                select(ReaderRanking.subscriber_id).where(
                    ReaderRanking.digest_id == digest_id, ReaderRanking.subscriber_id.in_(chunk)
                )
            )
        )
    return found


def put_rankings(
    session: Session, digest_id: int, rankings: Sequence[tuple[int, list[int]]]
) -> None:
    """Store (subscriber id, paper ids best first) rankings of a digest, replacing those
    readers' earlier ones, in statements of at most `IN_LIST_LIMIT` rows."""
    for start in range(0, len(rankings), IN_LIST_LIMIT):
        chunk = rankings[start : start + IN_LIST_LIMIT]
        session.execute(
            delete(ReaderRanking).where(
                ReaderRanking.digest_id == digest_id,
                ReaderRanking.subscriber_id.in_([subscriber_id for subscriber_id, _ in chunk]),
            )
        )
        session.execute(
            insert(ReaderRanking),
            [{"digest_id": digest_id, "subscriber_id": s, "paper_ids": ids} for s, ids in chunk],
        )


def delete_rankings_before(session: Session, issue_date: date) -> int:
    """Drop the rankings of digests before `issue_date` (a ranking row is a reader's order of
    one digest: they would pile up by the list's size every day); how many."""
    older = select(Digest.id).where(Digest.issue_date < issue_date).scalar_subquery()
    result = session.execute(delete(ReaderRanking).where(ReaderRanking.digest_id.in_(older)))
    return result.rowcount or 0


def has_rankings(session: Session, digest_id: int) -> bool:
    """Whether any reader has a ranking of this digest."""
    found = session.scalar(
        select(ReaderRanking.subscriber_id).where(ReaderRanking.digest_id == digest_id).limit(1)
    )
    return found is not None


def rankings_of(
    session: Session, digest_id: int, subscriber_ids: Iterable[int]
) -> dict[int, list[int]]:
    """Each of these readers' order of the digest's papers (paper ids, best first), by
    subscriber id; readers without a ranking (newest first for them) are left out, and so are
    those who have turned theirs off since it was made."""
    found: dict[int, list[int]] = {}
    for chunk in _chunks(subscriber_ids):
        rows = session.execute(
            select(ReaderRanking.subscriber_id, ReaderRanking.paper_ids)
            .join(Subscriber, Subscriber.id == ReaderRanking.subscriber_id)
            .where(
                ReaderRanking.digest_id == digest_id,
                ReaderRanking.subscriber_id.in_(chunk),
                Subscriber.ranking.is_(True),
            )
        )
        found.update((subscriber_id, list(paper_ids)) for subscriber_id, paper_ids in rows)
    return found
