"""Who is due, and the two writes that move a reader on: given a window, or only rescheduled.

A reader is due when their `next_send_at` has come, or, for a daily reader without an hour
(`next_send_at` None), whenever a newer daily digest is ready than the window they were given.
`give_window` is the claim that makes each window go to a reader once: it moves
`delivered_through` only where it still holds what the caller read, so two processes serving
the same moment cannot both give a reader the same papers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.models import Cadence, Subscriber, SubscriberStatus
from newsletter.store.subscribers import IN_LIST_LIMIT, one_of


class DueReader(NamedTuple):
    """What deciding a due reader's window needs of them."""

    id: int
    cadence: str
    hour: int | None
    day: int | None
    timezone: str | None
    delivered_through: datetime | None
    paused_until: date | None


def due_readers(
    session: Session, now: datetime, newest_end: datetime, among: tuple[int, int] | None = None
) -> list[DueReader]:
    """The active readers due at `now`, given that the newest ready digest ends at
    `newest_end` (those whose ids are within `among`, both ends included, when given)."""
    query = select(
        Subscriber.id,
        Subscriber.cadence,
        Subscriber.send_hour,
        Subscriber.send_day,
        Subscriber.timezone,
        Subscriber.delivered_through,
        Subscriber.paused_until,
    ).where(
        Subscriber.status == SubscriberStatus.active,
        or_(
            Subscriber.next_send_at <= now,
            and_(
                Subscriber.next_send_at.is_(None),
                or_(
                    Subscriber.delivered_through.is_(None),
                    Subscriber.delivered_through < newest_end,
                ),
            ),
        ),
    )
    if among is not None:
        query = query.where(Subscriber.id.between(*among))
    # Plain rows on the session's connection: the ORM's result wrapping is most of the
    # client's time for a list of 100,000 (see `subscriptions._topic_rows`).
    rows = session.connection().execute(query.order_by(Subscriber.id))
    return [DueReader(*row) for row in rows]


def reader_id_parts(session: Session, size: int) -> list[tuple[int, int]]:
    """The readers' ids cut into ranges (first, last) of about `size` active readers each (of
    equal width between the lowest and the highest id), together covering every id: readers
    who join meanwhile are in the last."""
    low, high, count = session.execute(
        select(func.min(Subscriber.id), func.max(Subscriber.id), func.count()).where(
            Subscriber.status == SubscriberStatus.active
        )
    ).one()
    if not count:
        return [(0, LAST_ID)]
    width = -(-(high - low + 1) // max(1, -(-count // size)))
    firsts = [0, *range(low + width, high + 1, width)]
    return list(zip(firsts, [first - 1 for first in firsts[1:]] + [LAST_ID], strict=True))


LAST_ID = 2**31 - 1
"""The largest id a subscriber can have (PostgreSQL's integer)."""


def give_window(
    session: Session,
    subscriber_ids: Sequence[int],
    *,
    had: datetime | None,
    through: datetime,
    next_send_at: datetime | None,
) -> dict[int, str]:
    """Move these readers' `delivered_through` from `had` to `through` and their next due
    time on; the public ids of those moved, by id (a reader another process moved meanwhile
    is not), which their delivery rows' Message-IDs are made from."""
    held = (
        Subscriber.delivered_through.is_(None)
        if had is None
        else Subscriber.delivered_through == had
    )
    moved: dict[int, str] = {}
    for start in range(0, len(subscriber_ids), IN_LIST_LIMIT):
        chunk = list(subscriber_ids[start : start + IN_LIST_LIMIT])
        rows = session.execute(
            update(Subscriber)
            .where(one_of(session, Subscriber.id, chunk), held)
            .values(delivered_through=through, next_send_at=next_send_at)
            .returning(Subscriber.id, Subscriber.public_id)
            .execution_options(synchronize_session=False)
        )
        moved.update((subscriber_id, public_id) for subscriber_id, public_id in rows)
    return moved


def reschedule(session: Session, subscriber_ids: Sequence[int], next_send_at: datetime) -> None:
    """Move these readers' next due time on, giving them nothing (nothing new, or paused)."""
    for start in range(0, len(subscriber_ids), IN_LIST_LIMIT):
        chunk = list(subscriber_ids[start : start + IN_LIST_LIMIT])
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(chunk))
            .values(next_send_at=next_send_at)
            .execution_options(synchronize_session=False)
        )


class Slot(NamedTuple):
    """Readers next due at one instant with one cadence."""

    at: datetime | None
    """None: daily readers without an hour, served as soon as each digest is built."""
    cadence: str
    readers: int


def upcoming_slots(session: Session, limit: int) -> list[Slot]:
    """The next due instants, soonest first, with how many active readers each (by cadence),
    after the readers served whenever a digest is built."""
    active = Subscriber.status == SubscriberStatus.active
    count = func.count()
    when_built = session.execute(
        select(Subscriber.cadence, count)
        .where(active, Subscriber.next_send_at.is_(None))
        .group_by(Subscriber.cadence)
    ).all()
    timed = session.execute(
        select(Subscriber.next_send_at, Subscriber.cadence, count)
        .where(active, Subscriber.next_send_at.is_not(None))
        .group_by(Subscriber.next_send_at, Subscriber.cadence)
        .order_by(Subscriber.next_send_at, Subscriber.cadence)
        .limit(limit)
    ).all()
    return [Slot(None, Cadence(cadence).value, n) for cadence, n in when_built] + [
        Slot(at, Cadence(cadence).value, n) for at, cadence, n in timed
    ]
