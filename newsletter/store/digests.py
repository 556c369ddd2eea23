"""Digests: one per issue date, with the window of papers it carries."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import (
    Digest,
)


def digest_on(session: Session, issue_date: date) -> Digest | None:
    return session.scalar(select(Digest).where(Digest.issue_date == issue_date))


def latest_digest_before(session: Session, issue_date: date) -> Digest | None:
    return session.scalar(
        select(Digest)
        .where(Digest.issue_date < issue_date)
        .order_by(Digest.issue_date.desc())
        .limit(1)
    )


def list_digests(session: Session) -> list[Digest]:
    return list(session.scalars(select(Digest).order_by(Digest.issue_date.desc())))


def digest_ids_since(session: Session, since: date) -> list[int]:
    """The ids of the digests of `since` and after, newest first."""
    query = select(Digest.id).where(Digest.issue_date >= since).order_by(Digest.issue_date.desc())
    return list(session.scalars(query))


def digest_by_id(session: Session, digest_id: int) -> Digest:
    return session.get(Digest, digest_id)


def add_digest(session: Session, digest: Digest) -> None:
    """Store a new digest now (its id is known on return)."""
    session.add(digest)
    session.flush()
