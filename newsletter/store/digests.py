"""Digests: one daily digest per issue date, and spans of several days; the window of papers
each carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Digest, DigestKind, Paper, Summary, TopicPaper

DAILY = Digest.kind == DigestKind.daily


def digest_on(session: Session, issue_date: date) -> Digest | None:
    """The daily digest of that date."""
    return session.scalar(select(Digest).where(DAILY, Digest.issue_date == issue_date))


def latest_digest_before(session: Session, issue_date: date) -> Digest | None:
    """The newest daily digest dated before that date."""
    return session.scalar(
        select(Digest)
        .where(DAILY, Digest.issue_date < issue_date)
        .order_by(Digest.issue_date.desc())
        .limit(1)
    )


def list_digests(session: Session) -> list[Digest]:
    """The daily digests (the archive), newest first."""
    return list(session.scalars(select(Digest).where(DAILY).order_by(Digest.issue_date.desc())))


def digest_ids_since(session: Session, since: date) -> list[int]:
    """The ids of the digests (daily and spans) of `since` and after, newest first."""
    query = (
        select(Digest.id)
        .where(Digest.issue_date >= since)
        .order_by(Digest.issue_date.desc(), Digest.id.desc())
    )
    return list(session.scalars(query))


def digest_by_id(session: Session, digest_id: int) -> Digest:
    return session.get(Digest, digest_id)


def span_by_id(session: Session, digest_id: int) -> Digest | None:
    """A span, by its id (its web address names it so)."""
    digest = session.get(Digest, digest_id)
    return digest if digest is not None and digest.kind == DigestKind.span else None


def span_between(session: Session, start: datetime | None, end: datetime) -> Digest | None:
    """The span of exactly the window (start, end], if one was made."""
    where = Digest.window_start.is_(None) if start is None else Digest.window_start == start
    return session.scalar(
        select(Digest).where(Digest.kind == DigestKind.span, where, Digest.window_end == end)
    )


def open_span(session: Session, start: datetime | None, end: datetime, day: date) -> Digest:
    """The span of (start, end]: the one made already, or a new one dated `day` (stored now;
    made by another process meanwhile, theirs)."""
    span = span_between(session, start, end)
    if span is not None:
        return span
    try:
        with session.begin_nested():
            span = Digest(issue_date=day, kind=DigestKind.span, window_start=start, window_end=end)
            add_digest(session, span)
        return span
    except IntegrityError:  # another process made it meanwhile (one span a window)
        return span_between(session, start, end)


def first_day_after(session: Session, start: datetime | None) -> date | None:
    """The date of the first daily digest whose window begins at or after `start`: a span's
    first day."""
    query = select(func.min(Digest.issue_date)).where(DAILY)
    if start is not None:
        query = query.where(Digest.window_start >= start)
    return session.scalar(query)


def latest_ready_daily(session: Session) -> Digest | None:
    """The newest daily digest that is built: what due readers are given, up to its end."""
    return session.scalar(
        select(Digest)
        .where(DAILY, Digest.ready_at.is_not(None))
        .order_by(Digest.window_end.desc())
        .limit(1)
    )


def daily_digests_ending_after(session: Session, after: datetime) -> list[Digest]:
    """The daily digests whose window ends after `after`, oldest first."""
    return list(
        session.scalars(
            select(Digest).where(DAILY, Digest.window_end > after).order_by(Digest.window_end)
        )
    )


def add_digest(session: Session, digest: Digest) -> None:
    """Store a new digest now (its id is known on return)."""
    session.add(digest)
    session.flush()


def mark_ready(session: Session, digest_id: int, at: datetime) -> bool:
    """The digest is built (ranked, translated): readers may be given it from now on. True
    when it was not ready before."""
    digest = session.get(Digest, digest_id)
    if digest.ready_at is not None:
        return False
    digest.ready_at = at
    return True


def lock_digest(session: Session, digest_id: int) -> None:
    """Hold the digest's row until the transaction ends, so that transactions asking "is it
    all sent?" take turns, each seeing what the one before committed (PostgreSQL: FOR NO KEY
    UPDATE, which new delivery rows' foreign keys do not wait for; SQLite's writers take turns
    already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(Digest.id).where(Digest.id == digest_id).with_for_update(key_share=True)
        )


@dataclass(frozen=True)
class DigestStamp:
    """What a digest's web page is made of, in a few values that change whenever the page
    would: its validator, read without reading the papers (see `digest_stamp`)."""

    digest_id: int
    values: tuple
    """The digest's window and readiness, the number of its papers' links, their versions, code
    checks and summaries, and the code news of its window."""
    changed_at: datetime
    """The latest of the moments in `values` (when the page last changed, as far as its rows
    tell: a topic renamed has no moment)."""
    ready: bool


def digest_stamp(
    session: Session, topic_ids: list[int], *, issue_date: date | None = None,
    span_id: int | None = None,
) -> DigestStamp | None:  # fmt: skip
    """The stamp of the daily digest of `issue_date` (or the span `span_id`) as shown for these
    topics, in one statement of aggregates over the papers its window holds; None when there
    is no such digest.

    What the page shows of a paper changes only with these: a new version (its text), a code
    check (a link found), a summary written; the window's code news with a code link found in
    it. A paper's text never changes within a version.
    """
    if span_id is not None:
        which = and_(Digest.id == span_id, Digest.kind == DigestKind.span)
    else:
        which = and_(DAILY, Digest.issue_date == issue_date)
    start, end = Digest.window_start, Digest.window_end
    in_window = and_(
        TopicPaper.topic_id.in_(topic_ids or [-1]),
        or_(start.is_(None), TopicPaper.linked_at > start),
        TopicPaper.linked_at <= end,
    )
    papers = select(TopicPaper.paper_id).where(in_window)
    of_papers = Paper.id.in_(papers)
    code_news = and_(Paper.code_found_at > start, Paper.code_found_at <= end)
    aggregates = [
        select(func.count()).select_from(TopicPaper).where(in_window),
        select(func.max(TopicPaper.linked_at)).where(in_window),
        select(func.sum(Paper.version)).where(of_papers),
        select(func.count(Paper.code_checked_at)).where(of_papers),
        select(func.max(Paper.code_checked_at)).where(of_papers),
        select(func.count()).select_from(Summary).where(Summary.paper_id.in_(papers)),
        select(func.max(Summary.created_at)).where(Summary.paper_id.in_(papers)),
        select(func.count()).select_from(Paper).where(code_news),
    ]
    row = session.execute(
        select(
            Digest.id, start, end, Digest.created_at, Digest.ready_at,
            *(aggregate.scalar_subquery() for aggregate in aggregates),
        ).where(which)
    ).first()  # fmt: skip
    if row is None:
        return None
    digest_id, *values = row
    moments = [value for value in values if isinstance(value, datetime)]
    return DigestStamp(digest_id, tuple(values), max(moments), values[3] is not None)
