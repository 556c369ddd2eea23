"""Digests: one daily digest per issue date, and spans of several days; the window of papers
each carries."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Digest, DigestKind

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
