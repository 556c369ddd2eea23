"""Deliveries: one row per (digest, subscriber), claimed under a lease, finished exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from newsletter.intake.subscribers import email_key
from newsletter.models import (
    UNSENT,
    ChatPlatform,
    Delivery,
    DeliveryStatus,
    MailFormat,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    utcnow,
)
from newsletter.store.subscribers import IN_LIST_LIMIT, one_of


def add_deliveries(
    session: Session, digest_id: int, created_at: datetime, rows: list[tuple[int, str, int]]
) -> int:
    """Insert a digest's pending delivery rows, each (subscriber id, Message-ID, paper count),
    except for subscribers who have one for the digest already; the rows written.

    Those are skipped by the unique constraint (ON CONFLICT DO NOTHING), one index probe a
    row, rather than looked up first: PostgreSQL plans `digest_id = ? AND subscriber_id =
    ANY(ids)` as a scan of the digest's rows filtered by the list, so each chunk's look-up
    cost more than the last (100 ms a thousand readers at 50,000 rows written; 10 of a
    100,000-reader build's 26 s). On PostgreSQL, one INSERT … SELECT FROM unnest(arrays): an
    executemany is one statement a row (pipelined), three times the time; elsewhere, an
    executemany (SQLite sums its rows)."""
    if not rows:
        return 0
    table = Delivery.__table__
    fixed = {"digest_id": digest_id, "status": DeliveryStatus.pending, "created_at": created_at}
    if session.get_bind().dialect.name != "postgresql":
        keys = ("subscriber_id", "message_id", "paper_count")
        return session.execute(
            sqlite_insert(table).on_conflict_do_nothing(),
            [fixed | dict(zip(keys, row, strict=True)) for row in rows],
        ).rowcount
    subscriber_ids, message_ids, paper_counts = map(list, zip(*rows, strict=True))
    given = _side_by_side(
        subscriber_id=(subscriber_ids, Integer),
        message_id=(message_ids, String),
        paper_count=(paper_counts, Integer),
    )
    written = session.scalars(
        postgresql_insert(table)
        .from_select(
            [*fixed, "subscriber_id", "message_id", "paper_count"],
            select(
                *(literal(value, table.c[name].type) for name, value in fixed.items()),
                given.c.subscriber_id,
                given.c.message_id,
                given.c.paper_count,
            ),
        )
        .on_conflict_do_nothing(index_elements=["digest_id", "subscriber_id"])
        .returning(table.c.id)
    )
    return len(written.all())


def _side_by_side(**columns: tuple[list, type[TypeEngine]]):
    """These lists as the columns of one table, row by row (PostgreSQL's unnest of several
    arrays): one parameter a list, the same SQL whatever the number of rows."""
    arrays = (literal(values, ARRAY(type_)) for values, type_ in columns.values())
    return func.unnest(*arrays).table_valued(*columns).render_derived()


def delivery_counts(session: Session, digest_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.digest_id == digest_id)
        .group_by(Delivery.status)
    )
    return {str(status): count for status, count in rows}


def deliveries_of(session: Session, digest_id: int) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery).where(Delivery.digest_id == digest_id).order_by(Delivery.id)
        )
    )


def delivery_by_id(session: Session, delivery_id: int) -> Delivery:
    return session.get(Delivery, delivery_id)


def sent_message_to(session: Session, message_id: str, address: str) -> bool:
    """Whether we sent the message with this Message-ID to this address (a digest delivery)."""
    if not message_id:
        return False
    query = (
        select(Delivery.id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.message_id == message_id, Subscriber.email_key == email_key(address))
        .limit(1)
    )
    return session.scalar(query) is not None


def _due_now(now: datetime):
    """Pending rows whose retry time has come, and rows whose claim has lapsed."""
    return or_(
        and_(
            Delivery.status == _written_in(DeliveryStatus.pending),
            or_(Delivery.not_before.is_(None), Delivery.not_before <= now),
        ),
        and_(Delivery.status == _written_in(DeliveryStatus.sending), Delivery.lease_until < now),
    )


def _written_in(status: DeliveryStatus):
    """A state written into the statement's text, not sent as a parameter: a planner takes a
    partial index (`ix_deliveries_unsent`) only when the query's WHERE implies the index's,
    which it cannot know of a parameter. PostgreSQL plans a statement run often (psycopg
    prepares it at its fifth run) once for all values, with its parameters unknown; SQLite
    matches an index's WHERE term by term, and a parameter matches no constant."""
    return literal(status, Delivery.status.type, literal_execute=True)


def claim_deliveries(
    session: Session, digest_id: int, worker: str, limit: int, now: datetime, lease: timedelta
) -> list[int]:
    """Atomically take up to `limit` due deliveries for `worker` until `now + lease`.

    PostgreSQL skips rows other workers have locked meanwhile; SQLite runs the single
    UPDATE … RETURNING while holding its write lock, which is as exclusive.
    """
    claim = _claim(session, digest_id, worker, limit, now, lease)
    return sorted(session.scalars(claim.returning(Delivery.id)))


def claim_delivery_rows(
    session: Session, digest_id: int, worker: str, limit: int, now: datetime, lease: timedelta
) -> list[ClaimedDelivery]:
    """`claim_deliveries`, and the rows claimed read as `claimed_rows` reads them: on
    PostgreSQL in one statement (the UPDATE … RETURNING joined to the subscribers), one round
    trip a batch instead of two and no list of ids sent back; elsewhere in two."""
    if session.get_bind().dialect.name != "postgresql":
        ids = claim_deliveries(session, digest_id, worker, limit, now, lease)
        return claimed_rows(session, ids)
    claimed = (
        _claim(session, digest_id, worker, limit, now, lease)
        .returning(Delivery.id, Delivery.message_id, Delivery.subscriber_id)
        .cte("claimed")
    )
    return _with_subscribers(session, claimed)


def _claim(
    session: Session, digest_id: int, worker: str, limit: int, now: datetime, lease: timedelta
):
    """The UPDATE that claims up to `limit` due deliveries (see `claim_deliveries`)."""
    due = (
        select(Delivery.id)
        .where(Delivery.digest_id == digest_id, _due_now(now))
        .order_by(Delivery.id)
        .limit(limit)
    )
    # Both walk `ix_deliveries_unsent`, never the rows sent (see `_written_in`). PostgreSQL
    # sees that the OR of the two states implies its WHERE (and the same term said twice would
    # halve its estimate of the rows due, enough to make it sort them all instead); SQLite
    # takes a partial index only for a query that has its WHERE's own terms.
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    else:
        due = due.where(Delivery.status.in_([_written_in(status) for status in UNSENT]))
    return (
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(status=DeliveryStatus.sending, claimed_by=worker, lease_until=now + lease)
    )


class ClaimedDelivery(NamedTuple):
    """A claimed delivery with what sending it needs of its subscriber."""

    delivery_id: int
    message_id: str
    subscriber_id: int
    email: str
    public_id: str
    status: SubscriberStatus
    language: str
    format: MailFormat
    paused_until: date | None
    created_at: datetime
    topic_ids: tuple[int, ...]
    """The subscriber's topics now, in display order."""
    channel: ChatPlatform | None = None
    """A chat channel's platform (its digest is posted, not mailed); None: a person's address."""


def claimed_rows(session: Session, ids: list[int]) -> list[ClaimedDelivery]:
    """The claimed deliveries, by id, with their subscribers' fields and topics: one SELECT
    (a row per topic, grouped here)."""
    if not ids:
        return []
    wanted = select(Delivery.id, Delivery.message_id, Delivery.subscriber_id).where(
        one_of(session, Delivery.id, ids)
    )
    return _with_subscribers(session, wanted.subquery())


def _with_subscribers(session: Session, deliveries) -> list[ClaimedDelivery]:
    """The deliveries selected by `deliveries` (id, message_id, subscriber_id) with their
    subscribers' fields and topics, by id: a row per topic, grouped here."""
    delivery = deliveries.c
    rows = session.connection().execute(  # plain rows: no ORM wrapping (see `_topic_rows`)
        select(
            delivery.id,
            delivery.message_id,
            Subscriber.id,
            Subscriber.email,
            Subscriber.public_id,
            Subscriber.status,
            Subscriber.language,
            Subscriber.format,
            Subscriber.paused_until,
            Subscriber.created_at,
            Subscriber.channel,
            SubscriberTopic.topic_id,
        )
        .join(Subscriber, Subscriber.id == delivery.subscriber_id)
        .outerjoin(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .outerjoin(Topic, Topic.id == SubscriberTopic.topic_id)
        .order_by(delivery.id, Topic.position, Topic.id)
    )
    claimed: dict[int, ClaimedDelivery] = {}
    topics: dict[int, list[int]] = {}
    for *fields, channel, topic_id in rows:
        delivery_id = fields[0]
        if delivery_id not in claimed:
            claimed[delivery_id] = ClaimedDelivery(*fields, topic_ids=(), channel=channel)
            topics[delivery_id] = []
        if topic_id is not None:
            topics[delivery_id].append(topic_id)
    return [row._replace(topic_ids=tuple(topics[key])) for key, row in claimed.items()]


class ChannelTarget(NamedTuple):
    """Where a claimed channel delivery is posted, and what its row says of posts made."""

    label: str
    platform: ChatPlatform
    url: str
    room: str | None
    secret: str | None
    detail: str
    """The row's detail: how many of its posts a platform accepted already, if any."""


def channel_targets(session: Session, delivery_ids: list[int]) -> dict[int, ChannelTarget]:
    """The channels of these deliveries (those that are a channel's), by delivery id."""
    if not delivery_ids:
        return {}
    rows = session.execute(
        select(
            Delivery.id,
            Subscriber.email,
            Subscriber.channel,
            Subscriber.channel_url,
            Subscriber.channel_room,
            Subscriber.channel_secret,
            Delivery.detail,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(delivery_ids), Subscriber.channel.is_not(None))
    )
    return {delivery_id: ChannelTarget(*fields) for delivery_id, *fields in rows}


def note_delivery_progress(
    session: Session, delivery_id: int, worker: str, detail: str, lease_until: datetime
) -> None:
    """A claimed delivery's progress (posts a chat platform accepted so far), written while the
    claim holds, and the claim renewed (a message of many parts, each perhaps waiting out a
    rate limit, may outlast a lease): a retry, here or by another worker, goes on from there."""
    session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == DeliveryStatus.sending,
            Delivery.claimed_by == worker,
        )
        .values(detail=detail[:2000], lease_until=lease_until)
    )


def finish_delivery(
    session: Session, delivery_id: int, status: DeliveryStatus, detail: str
) -> None:
    """Sent, failed or skipped: the row is done and no longer claimed."""
    values: dict = {
        "status": status,
        "detail": detail[:2000],
        "claimed_by": None,
        "lease_until": None,
    }
    if status != DeliveryStatus.skipped:
        values["attempts"] = Delivery.attempts + 1
    if status == DeliveryStatus.sent:
        values["sent_at"] = utcnow()
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def finish_sent(session: Session, replies: Mapping[int, str]) -> int:
    """Many deliveries sent, each with the server's reply: one UPDATE for them all (for up to
    `IN_LIST_LIMIT` of them); how many were not marked finished before.

    Rows already finished are left as they are: a sender's group and the send journal folded
    by another sender (see `delivery.journal`) may both say the same message went, and it went once.
    """
    items = list(replies.items())
    marked = 0
    for start in range(0, len(items), IN_LIST_LIMIT):
        chunk = dict(items[start : start + IN_LIST_LIMIT])
        marked += session.execute(
            _with_replies(session, chunk)
            .where(Delivery.status.in_(UNSENT))
            .values(
                status=DeliveryStatus.sent,
                attempts=Delivery.attempts + 1,
                sent_at=utcnow(),
                claimed_by=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
    return marked


def _with_replies(session: Session, replies: dict[int, str]):
    """The UPDATE of these rows setting each one's `detail` to its reply.

    On PostgreSQL the ids and replies go as two arrays joined to the rows (UPDATE … FROM
    unnest, `_side_by_side`): two parameters, the same SQL whatever the count, where a CASE of
    a branch per row made the driver convert and the server plan hundreds of parameters for
    every group written (more client CPU than the write itself)."""
    details = [reply[:2000] for reply in replies.values()]
    if session.get_bind().dialect.name == "postgresql":
        given = _side_by_side(id=(list(replies), Integer), detail=(details, Text))
        return update(Delivery).where(Delivery.id == given.c.id).values(detail=given.c.detail)
    return (
        update(Delivery)
        .where(Delivery.id.in_(list(replies)))
        .values(detail=case(dict(zip(replies, details, strict=True)), value=Delivery.id))
    )


def skip_deliveries(session: Session, delivery_ids: list[int], detail: str) -> None:
    """Deliveries not to send (the subscriber left, bounced or paused): one UPDATE."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids))
            .values(status=DeliveryStatus.skipped, detail=detail, claimed_by=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


def defer_delivery(session: Session, delivery_id: int, detail: str, not_before: datetime) -> None:
    """A temporary failure: pending again, not before `not_before`."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(
            status=DeliveryStatus.pending,
            detail=detail[:2000],
            attempts=Delivery.attempts + 1,
            not_before=not_before,
            claimed_by=None,
            lease_until=None,
        )
    )


def renew_claims(session: Session, ids: list[int], worker: str, lease_until: datetime) -> set[int]:
    """Extend `worker`'s claim on these deliveries; the ids it still holds (others may have
    claimed some after its lease ended)."""
    if not ids:
        return set()
    renewed = session.scalars(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.sending,
            Delivery.claimed_by == worker,
        )
        .values(lease_until=lease_until)
        .returning(Delivery.id)
    )
    return set(renewed)


def release_deliveries(session: Session, ids: list[int], worker: str) -> None:
    """Give claimed, unsent deliveries back (pending, unclaimed) if `worker` still holds them."""
    if ids:
        session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(ids),
                Delivery.status == DeliveryStatus.sending,
                Delivery.claimed_by == worker,
            )
            .values(status=DeliveryStatus.pending, claimed_by=None, lease_until=None)
        )


def count_unfinished(session: Session, digest_id: int) -> int:
    """Deliveries pending or being sent."""
    query = select(func.count()).where(Delivery.digest_id == digest_id, Delivery.status.in_(UNSENT))
    return session.scalar(query) or 0


def next_due_at(session: Session, digest_id: int) -> datetime | None:
    """When the next unfinished delivery can be sent (now, a retry time, or a lease's end)."""
    pending = session.scalar(
        select(func.min(func.coalesce(Delivery.not_before, Delivery.created_at))).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.pending
        )
    )
    leased = session.scalar(
        select(func.min(Delivery.lease_until)).where(
            Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.sending
        )
    )
    times = [_aware(moment) for moment in (pending, leased) if moment is not None]
    return min(times) if times else None


def _aware(moment: datetime) -> datetime:
    # Aggregates bypass the column type, so SQLite hands back naive (UTC) datetimes or text.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def failed_deliveries(
    session: Session, digest_id: int, limit: int = 50
) -> list[tuple[str, str, str]]:
    """(address, status, server's reply) of deliveries that failed or wait for a retry."""
    rows = session.execute(
        select(Subscriber.email, Delivery.status, Delivery.detail)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.digest_id == digest_id,
            or_(
                Delivery.status == DeliveryStatus.failed,
                and_(Delivery.status == DeliveryStatus.pending, Delivery.attempts > 0),
            ),
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    return [(email, str(status), detail) for email, status, detail in rows]


def claims_in_flight(session: Session, digest_id: int) -> list[tuple[str, int, datetime]]:
    """(worker, deliveries it holds, when its lease ends) for the digest's claimed rows."""
    rows = session.execute(
        select(Delivery.claimed_by, func.count(), func.max(Delivery.lease_until))
        .where(Delivery.digest_id == digest_id, Delivery.status == DeliveryStatus.sending)
        .group_by(Delivery.claimed_by)
    )
    return [(worker or "?", count, _aware(lease)) for worker, count, lease in rows]
