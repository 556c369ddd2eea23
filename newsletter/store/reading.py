"""What readers did with papers: saved them to their library, rated them ("more like this",
"less like this"), or named them as seeds. One `ReaderPaper` row per (reader, paper), written
only by an explicit action; every write here is idempotent (doing it twice changes nothing the
second time, and says so).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import case, false, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Paper, Rating, ReaderPaper, utcnow
from newsletter.store.deliveries import _aware


def reader_paper(session: Session, subscriber_id: int, paper_id: int) -> ReaderPaper | None:
    """What this reader did with this paper so far; None when nothing."""
    return session.get(ReaderPaper, (subscriber_id, paper_id))


def _row(session: Session, subscriber_id: int, paper_id: int) -> ReaderPaper:
    row = reader_paper(session, subscriber_id, paper_id)
    if row is None:
        try:
            with session.begin_nested():  # two presses at once: the second finds the first's
                row = ReaderPaper(subscriber_id=subscriber_id, paper_id=paper_id)
                session.add(row)
        except IntegrityError:
            row = session.scalars(
                select(ReaderPaper).where(
                    ReaderPaper.subscriber_id == subscriber_id, ReaderPaper.paper_id == paper_id
                )
            ).one()
    return row


def save_paper(
    session: Session, subscriber_id: int, paper_id: int, at: datetime | None = None
) -> bool:
    """Put a paper in the reader's library; False when it was there already (kept as saved
    then, so the library's order does not change on a replay)."""
    row = _row(session, subscriber_id, paper_id)
    if row.saved_at is not None:
        return False
    row.saved_at = at or utcnow()
    session.flush()
    return True


def unsave_paper(session: Session, subscriber_id: int, paper_id: int) -> bool:
    """Take a paper out of the reader's library; False when it was not in it. Its rating and
    seed mark stay: removing is tidying a list, not a judgement."""
    row = reader_paper(session, subscriber_id, paper_id)
    if row is None or row.saved_at is None:
        return False
    row.saved_at = None
    session.flush()
    return True


def rate_paper(
    session: Session,
    subscriber_id: int,
    paper_id: int,
    rating: Rating | None,
    at: datetime | None = None,
) -> bool:
    """Record "more like this" (`Rating.more`) or "less like this" (`Rating.less`), replacing
    an earlier rating; `None` takes the rating back. False when nothing changed."""
    row = reader_paper(session, subscriber_id, paper_id)
    if row is None and rating is None:
        return False
    row = row or _row(session, subscriber_id, paper_id)
    value = None if rating is None else int(rating)
    if row.rating == value:
        return False
    row.rating = value
    row.rated_at = None if value is None else (at or utcnow())
    session.flush()
    return True


def mark_seeds(session: Session, subscriber_id: int, paper_ids: Iterable[int]) -> int:
    """Mark papers as the reader's seeds (papers they already know and like); how many were
    not marked before."""
    marked = 0
    for paper_id in sorted(set(paper_ids)):
        row = _row(session, subscriber_id, paper_id)
        if not row.seed:
            row.seed = True
            marked += 1
    session.flush()
    return marked


def saved_papers(
    session: Session, subscriber_id: int, limit: int | None = None
) -> list[tuple[Paper, datetime]]:
    """(paper, when saved) of the reader's library, newest saved first."""
    query = (
        select(Paper, ReaderPaper.saved_at)
        .join(ReaderPaper, ReaderPaper.paper_id == Paper.id)
        .where(ReaderPaper.subscriber_id == subscriber_id, ReaderPaper.saved_at.is_not(None))
        .order_by(ReaderPaper.saved_at.desc(), Paper.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return [(paper, _aware(saved_at)) for paper, saved_at in session.execute(query)]


def library_of(session: Session, subscriber_id: int) -> list[Paper]:
    """The papers of the reader's library, newest saved first."""
    return [paper for paper, _saved_at in saved_papers(session, subscriber_id)]


def _positive():
    """A paper the reader wants more of: rated "more", or saved or seeded and not rated "less"
    (a later "less like this" outweighs having saved it)."""
    return case(
        (ReaderPaper.rating == int(Rating.more), true()),
        (ReaderPaper.rating == int(Rating.less), false()),
        else_=(ReaderPaper.saved_at.is_not(None)) | ReaderPaper.seed,
    )


def reader_signal_counts(
    session: Session, subscriber_ids: Iterable[int] | None = None
) -> dict[int, int]:
    """How many positive examples (see `reader_examples`) each reader has, by subscriber id;
    readers with none are left out. All readers when `subscriber_ids` is None."""
    query = (
        select(ReaderPaper.subscriber_id, func.count())
        .where(_positive())
        .group_by(ReaderPaper.subscriber_id)
    )
    if subscriber_ids is not None:
        ids = sorted(set(subscriber_ids))
        if not ids:
            return {}
        query = query.where(ReaderPaper.subscriber_id.in_(ids))
    return {subscriber_id: count for subscriber_id, count in session.execute(query)}


def reader_examples(session: Session, subscriber_id: int) -> tuple[list[int], list[int]]:
    """(positive, negative) paper ids of a reader: positive are rated "more like this", or
    saved or seeded without a "less like this"; negative are rated "less like this"."""
    rows = session.execute(
        select(ReaderPaper.paper_id, _positive(), ReaderPaper.rating)
        .where(ReaderPaper.subscriber_id == subscriber_id)
        .order_by(ReaderPaper.paper_id)
    )
    positive, negative = [], []
    for paper_id, is_positive, rating in rows:
        if is_positive:
            positive.append(paper_id)
        elif rating == int(Rating.less):
            negative.append(paper_id)
    return positive, negative


def paper_by_arxiv_id(session: Session, arxiv_id: str) -> Paper | None:
    return session.scalar(select(Paper).where(Paper.arxiv_id == arxiv_id))


def papers_by_dois(session: Session, dois: Iterable[str]) -> dict[str, Paper]:
    """Stored papers by DOI, compared without case (DOIs are case-insensitive); the key is the
    DOI folded to lower case."""
    keys = sorted({doi.strip().lower() for doi in dois if doi.strip()})
    if not keys:
        return {}
    rows = session.scalars(select(Paper).where(func.lower(Paper.doi).in_(keys)))
    return {paper.doi.lower(): paper for paper in rows}
