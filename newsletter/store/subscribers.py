"""Subscribers: finding, adding, importing, their rhythm, their status and the event log of
each."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from sqlalchemy import (
    String,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from newsletter.errors import AlreadyExists, UnknownSubscriber
from newsletter.intake.channels import ChannelSpec
from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import SubscriberSpec, email_key
from newsletter.intake.webhooks import MESSAGE_ID_PREFIX, SUBSCRIBER_EVENTS, envelope_timestamp
from newsletter.models import (
    Cadence,
    Event,
    MailFormat,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    UTCDateTime,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from newsletter.schedules import Schedule

# A module, not its functions: `follows` reads this module's IN_LIST_LIMIT the same way, and
# either may be imported first (the store's modules are imported as their names are read).
from newsletter.store import follows as _follows
from newsletter.store.topics import get_topics
from newsletter.store.webhooks import (
    PENDING,
    listeners,
    queue_event,
    subscriber_data,
    subscriber_payload,
)


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email_key == email_key(email)))


def get_subscriber(session: Session, email: str) -> Subscriber:
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise UnknownSubscriber(f"no subscriber with the address {email!r}")
    return subscriber


def find_channel(session: Session, label: str) -> Subscriber | None:
    """The chat channel of this label (case folded)."""
    query = select(Subscriber).where(
        Subscriber.channel.is_not(None), func.lower(Subscriber.email) == label.strip().lower()
    )
    return session.scalars(query.limit(1)).first()


def get_channel(session: Session, label: str) -> Subscriber:
    channel = find_channel(session, label)
    if channel is None:
        raise UnknownSubscriber(f"no channel named {label!r} (see `channels list`)")
    return channel


def subscriber_by_public_id(session: Session, public_id: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.public_id == public_id))


def add_subscriber(
    session: Session, spec: SubscriberSpec, source: str, *, clock: SendClock
) -> Subscriber:
    if find_subscriber(session, spec.email) is not None:
        raise AlreadyExists(
            f"{spec.email} is subscribed already (change it with `subscribers edit`)"
        )
    return _insert_subscriber(session, spec, source, clock, email_key=email_key(spec.email))


def add_channel(
    session: Session, channel: ChannelSpec, spec: SubscriberSpec, source: str, *, clock: SendClock
) -> Subscriber:
    """A chat channel as a subscriber: `spec` its topics and language, `channel` where its
    digest is posted. One subscriber per channel, and one channel per label."""
    if session.scalar(select(Subscriber.id).where(Subscriber.email_key == channel.key)):
        raise AlreadyExists("that channel is subscribed already (see `channels list`)")
    if find_channel(session, channel.label) is not None:
        raise AlreadyExists(f"a channel is named {channel.label!r} already: choose another name")
    return _insert_subscriber(
        session,
        spec,
        source,
        clock,
        email_key=channel.key,
        channel=channel.platform,
        channel_url=channel.url,
        channel_room=channel.room,
        channel_secret=channel.secret,
    )


def _insert_subscriber(
    session: Session, spec: SubscriberSpec, source: str, clock: SendClock, **columns: object
) -> Subscriber:
    schedule = spec.schedule.applied_to(Schedule())
    subscriber = Subscriber(
        email=spec.email,
        name=spec.name,
        language=spec.language,
        format=spec.format or MailFormat.html,
        topics=get_topics(session, spec.topics),
        **columns,
    )
    set_schedule(subscriber, schedule, clock)
    session.add(subscriber)
    session.flush()
    _follows.add_follows(session, subscriber.id, spec.follows or ())
    log_event(
        session, subscriber, "subscribed", source, ", ".join(t.name for t in subscriber.topics)
    )
    return subscriber


def list_subscribers(
    session: Session,
    topic: Topic | None = None,
    status: SubscriberStatus | None = None,
    *,
    channels: bool = False,
) -> list[Subscriber]:
    """People with an address (their list, their CSV export); with `channels`, the chat
    channels instead."""
    is_channel = Subscriber.channel.is_not(None) if channels else Subscriber.channel.is_(None)
    query = select(Subscriber).where(is_channel).order_by(Subscriber.id)
    if topic is not None:
        query = query.join(SubscriberTopic).where(SubscriberTopic.topic_id == topic.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    return list(session.scalars(query))


STREAM_CHUNK = 2_000
"""Rows fetched at a time when a whole list is read (a server-side cursor on PostgreSQL)."""


IN_LIST_LIMIT = 5_000
"""Most values bound in one statement's IN list (SQLite allows 32,766 parameters in all)."""


def one_of(session: Session, column, values: list):
    """`column IN values`; on PostgreSQL `column = ANY(array)` of the column's type, one
    parameter: the same statement whatever the count, so the driver converts and plans its SQL
    once, not per list length (a thousand parameters cost more to convert than the query to
    run)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY  # loaded already: the engine's

        return column == any_(literal(values, ARRAY(column.type)))
    return column.in_(values)


def subscriber_emails(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """The addresses of these subscribers, by id."""
    wanted = sorted(set(ids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), IN_LIST_LIMIT):
        chunk = wanted[start : start + IN_LIST_LIMIT]
        rows = session.execute(
            select(Subscriber.id, Subscriber.email).where(Subscriber.id.in_(chunk))
        )
        found.update((subscriber_id, email) for subscriber_id, email in rows)
    return found


def set_status(
    session: Session,
    subscriber: Subscriber,
    status: SubscriberStatus,
    source: str,
    detail: str = "",
) -> bool:
    """Change a subscriber's status and log it; False when it was that already."""
    if subscriber.status == status:
        return False
    subscriber.status = status
    if status in (SubscriberStatus.unsubscribed, SubscriberStatus.bounced):
        # A confirmation link sent before must not bring the address back: it no longer
        # matches (see `confirmation_matches`), and a new request may send one at once.
        subscriber.confirmation_sent_at = None
    log_event(session, subscriber, status.value, source, detail)
    return True


_LEFT = SubscriberStatus.unsubscribed
# Built once, run as Core statements on the session's connection: the ORM's bulk-update path
# and the building of each statement were most of a one-click POST's CPU.
_UNSUBSCRIBE = (
    update(Subscriber.__table__)
    .where(Subscriber.public_id == bindparam("wanted"), Subscriber.status != _LEFT)
    # As `set_status`: a confirmation link sent before no longer brings them back.
    .values(status=_LEFT, confirmation_sent_at=None)
    .returning(Subscriber.id, Subscriber.email, Subscriber.language)
)
_LOG_LEFT = insert(Event.__table__).values(kind=_LEFT.value)
_TOPIC_NAMES = (
    select(Topic.name)
    .join(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
    .where(SubscriberTopic.subscriber_id == bindparam("subscriber_id"))
    .order_by(Topic.position, Topic.id)
)


def unsubscribe_public_id(connection: Connection, public_id: str, source: str) -> bool:
    """`set_status(…, unsubscribed, source)` for the subscriber of this public id, without
    loading them, for the RFC 8058 one-click POST, which mail providers send in bursts: on a
    connection of `db.connection_scope`, committed here. False when no such subscriber is
    here, or they had left already (nothing is written: the POST may come twice).

    On PostgreSQL one statement does it all (`_one_click_statement`), atomic by itself, so it
    runs in autocommit: no BEGIN and no COMMIT to wait for. Elsewhere, in one transaction: one
    UPDATE … RETURNING, the event's INSERT and, only when a webhook listens, its rows."""
    if connection.dialect.name == "postgresql":
        at = utcnow()
        values = {"wanted": public_id, "source": source, "at": at}
        values["timestamp"] = envelope_timestamp(at)
        autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
        return autocommit.execute(_one_click_statement(), values).first() is not None
    with connection.begin():
        gone = connection.execute(_UNSUBSCRIBE, {"wanted": public_id}).first()
        if gone is None:
            return False
        subscriber_id, email, language = gone
        connection.execute(_LOG_LEFT, {"subscriber_id": subscriber_id, "source": source})
        event = SUBSCRIBER_EVENTS[_LEFT.value]
        webhooks = listeners(connection, event)
        if webhooks:
            topics = connection.execute(_TOPIC_NAMES, {"subscriber_id": subscriber_id}).scalars()
            data = subscriber_payload(
                public_id, email, str(_LEFT), language, list(topics), source, ""
            )
            queue_event(connection, event, data, to=webhooks)
    return True


@cache  # made once, at the first one-click POST of the process
def _one_click_statement():
    """The whole of `unsubscribe_public_id` as one PostgreSQL statement, one round trip: the
    UPDATE … RETURNING (`_UNSUBSCRIBE`) feeds, in data-modifying WITH queries, the event's
    INSERT and one webhook delivery per active webhook that listens, its envelope built by
    `json_build_object` with what `queue_event` writes (the same keys in the same order, an id
    of its own for each row, the timestamp given as `timestamp`, made from `at`). PostgreSQL
    runs each WITH query once, to completion, whether or not the outer SELECT reads it; when
    the UPDATE finds nobody to change, the INSERTs have no rows to write."""
    # Here, not at the top: on SQLite nothing else needs SQLAlchemy's PostgreSQL dialect, and
    # its import (with its drivers' modules) costs every command that lists subscribers ~30 ms.
    from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

    at = bindparam("at", type_=UTCDateTime())
    # `updated_at`'s onupdate is given here: SQLAlchemy fills in no default inside a WITH.
    gone = _UNSUBSCRIBE.values(updated_at=at).cte("gone")
    source = bindparam("source", type_=String())
    logged = insert(Event.__table__).from_select(
        ["subscriber_id", "kind", "source", "detail", "at"],
        select(gone.c.id, literal(_LEFT.value), source, literal(""), at),
    )
    topics = (
        select(
            func.coalesce(
                func.json_agg(aggregate_order_by(Topic.name, Topic.position, Topic.id)),
                literal_column("'[]'::json"),
            )
        )
        .join_from(SubscriberTopic, Topic, SubscriberTopic.topic_id == Topic.id)
        .where(SubscriberTopic.subscriber_id == gone.c.id)
        .scalar_subquery()
    )
    subscriber = func.json_build_object(
        "public_id", bindparam("wanted", type_=String()), "email", gone.c.email,
        "status", str(_LEFT), "language", gone.c.language, "topics", topics,
    )  # fmt: skip
    event = SUBSCRIBER_EVENTS[_LEFT.value]
    unique_id = func.replace(cast(func.gen_random_uuid(), String), "-", "")
    payload = func.json_build_object(
        "id", func.concat(MESSAGE_ID_PREFIX, unique_id), "type", event,
        "timestamp", bindparam("timestamp", type_=String()),
        "data", func.json_build_object("subscriber", subscriber, "source", source, "detail", ""),
    )  # fmt: skip
    webhooks = Webhook.__table__
    listening = (
        select(
            webhooks.c.id, literal(event), payload, literal(PENDING), literal(0), literal(""), at
        )
        .join_from(gone, webhooks, true())
        .where(webhooks.c.active.is_(True), cast(webhooks.c.events, JSONB).contains([event]))
        .order_by(webhooks.c.id)
    )
    queued = insert(WebhookDelivery.__table__).from_select(
        ["webhook_id", "event", "payload", "status", "attempts", "detail", "created_at"],
        listening,
    )
    return select(gone.c.id).add_cte(logged.cte("logged"), queued.cte("queued"))


def purge_subscriber(session: Session, subscriber: Subscriber) -> None:
    session.delete(subscriber)


def remove_subscriber(
    session: Session, subscriber: Subscriber, source: str, *, purge: bool = False
) -> None:
    """How every door removes a subscriber or a channel: unsubscribed, their history kept; or,
    with `purge`, deleted with their history."""
    if purge:
        purge_subscriber(session, subscriber)
    else:
        set_status(session, subscriber, SubscriberStatus.unsubscribed, source)


def log_event(
    session: Session, subscriber: Subscriber, kind: str, source: str, detail: str = ""
) -> None:
    """Log what happened to a subscriber; the webhooks that asked for it (a confirmation, an
    unsubscription, a bounce: `SUBSCRIBER_EVENTS`) are told in the same transaction, whichever
    door it came through."""
    session.add(Event(subscriber_id=subscriber.id, kind=kind, source=source, detail=detail))
    if kind in SUBSCRIBER_EVENTS:
        queue_event(session, SUBSCRIBER_EVENTS[kind], subscriber_data(subscriber, source, detail))


def events_of(session: Session, subscriber: Subscriber) -> list[Event]:
    return list(
        session.scalars(
            select(Event).where(Event.subscriber_id == subscriber.id).order_by(Event.id)
        )
    )


def schedule_of(subscriber: Subscriber) -> Schedule:
    """A reader's rhythm as stored."""
    return Schedule(
        subscriber.cadence, subscriber.send_hour, subscriber.send_day, subscriber.timezone
    )


def set_schedule(subscriber: Subscriber, schedule: Schedule, clock: SendClock) -> bool:
    """The one rule of a reader's rhythm, every door's: a new reader, or one whose cadence,
    hour, weekday or zone changes, is next due at `clock.next_send_at` (from this moment, in
    the list's zone and daily time where theirs are unset). False when it was theirs already:
    when they are due stays as the sender left it.

    `delivered_through` is never touched: the next digest starts where the last one ended,
    whatever the new rhythm, so a change of cadence loses and repeats no paper.
    """
    # A reader not flushed yet has no id (and no cadence before its INSERT): always new.
    if subscriber.id is not None and schedule_of(subscriber) == schedule:
        return False
    subscriber.cadence = Cadence(schedule.cadence)
    subscriber.send_hour, subscriber.send_day = schedule.hour, schedule.day
    subscriber.timezone = schedule.zone
    subscriber.next_send_at = clock.next_send_at(schedule)
    return True


def import_subscriber(
    session: Session, spec: SubscriberSpec, *, update_existing: bool, clock: SendClock
) -> str:
    """Add one imported subscriber: "added", "updated", "unchanged" or "left unsubscribed".

    An address that left the list is never put back by an import: only its owner can do that.
    """
    topics = get_topics(session, spec.topics)
    existing = find_subscriber(session, spec.email)
    if existing is None:
        add_subscriber(session, spec, source="import", clock=clock)
        return "added"
    return import_known_subscriber(
        session, existing, spec, topics, update_existing=update_existing, clock=clock
    )


def import_known_subscriber(
    session: Session,
    existing: Subscriber,
    spec: SubscriberSpec,
    topics: list[Topic],
    *,
    update_existing: bool,
    clock: SendClock,
) -> str:
    """An imported row whose address is on the list already (`topics` are the row's):
    "updated", "unchanged" or "left <their status>"."""
    if existing.status != SubscriberStatus.active:
        return f"left {existing.status.value}"
    if not update_existing:
        return "unchanged"
    mail_format = spec.format or existing.format  # no format given: theirs stays
    schedule = spec.schedule.applied_to(schedule_of(existing))  # nor rhythm: theirs stays
    wanted = (spec.name, spec.language, mail_format, {t.id for t in topics})
    have = (existing.name, existing.language, existing.format, {t.id for t in existing.topics})
    # No follows column: theirs stay, as with the format.
    follows_changed = spec.follows is not None and _follows.set_follows(
        session, existing.id, spec.follows
    )
    schedule_changed = set_schedule(existing, schedule, clock)
    if have == wanted and not follows_changed and not schedule_changed:
        return "unchanged"
    existing.name, existing.language, existing.topics = spec.name, spec.language, topics
    existing.format = mail_format
    detail = ", ".join(t.name for t in topics)
    if schedule_changed:
        detail += f"; {clock.describe(schedule)}"
    log_event(session, existing, "changed", "import", detail)
    return "updated"


def subscriber_by_id(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def count_hard_failure(subscriber: Subscriber) -> None:
    """One more hard failure for this address (a bounce report or a 5xx reply)."""
    subscriber.bounce_count += 1


def subscribers_page(
    session: Session,
    *,
    after_id: int = 0,
    limit: int = 100,
    topic: Topic | None = None,
    status: SubscriberStatus | None = None,
    language: str | None = None,
    email_contains: str | None = None,
) -> list[Subscriber]:
    """Up to `limit` subscribers after the one with `after_id`, in the order they came, that
    match every filter given (the address's part in any case)."""
    people = Subscriber.channel.is_(None)  # chat channels have a list of their own
    query = (
        select(Subscriber)
        .where(people, Subscriber.id > after_id)
        .order_by(Subscriber.id)
        .limit(limit)
    )
    if topic is not None:
        query = query.join(SubscriberTopic).where(SubscriberTopic.topic_id == topic.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if language is not None:
        query = query.where(Subscriber.language == language)
    if email_contains:
        part = email_contains.strip().lower()
        query = query.where(Subscriber.email_key.contains(part, autoescape=True))
    return list(session.scalars(query))
