"""Which digest a day has, and the window of papers it carries."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.models import Digest


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
        store.add_digest(session, digest)
    return digest
