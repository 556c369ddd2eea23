"""Subscribing and preferences: double opt-in, topics, language, pauses, and who gets which
topics on a given day."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import insert, or_, select, true, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import email_key, followed_names
from newsletter.models import (
    MailFormat,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    utcnow,
)
from newsletter.schedules import Schedule
from newsletter.store.follows import follows_of, set_follows
from newsletter.store.subscribers import (
    IN_LIST_LIMIT,
    STREAM_CHUNK,
    find_subscriber,
    get_subscriber,
    log_event,
    schedule_of,
    set_schedule,
    set_status,
)


def subscriber_topic_rows(
    session: Session, on: date, subscriber_ids: Sequence[int] | None = None
) -> Iterator[tuple[int, str, date | None, datetime, int]]:
    """(subscriber id, language, paused until, joined, topic id) of each active subscriber not
    paused on `on` (of these, when given), a row per topic, by subscriber then in topic order:
    the whole list streamed, never loaded."""
    if subscriber_ids is not None:
        wanted = sorted(set(subscriber_ids))
        for start in range(0, len(wanted), IN_LIST_LIMIT):
            chunk = wanted[start : start + IN_LIST_LIMIT]
            yield from _topic_rows(session, on, Subscriber.id.in_(chunk))
        return
    yield from _topic_rows(session, on, true())


def _topic_rows(
    session: Session, on: date, which
) -> Iterator[tuple[int, str, date | None, datetime, int]]:
    query = (
        select(
            Subscriber.id,
            Subscriber.language,
            Subscriber.paused_until,
            Subscriber.created_at,
            SubscriberTopic.topic_id,
        )
        .join(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .join(Topic, Topic.id == SubscriberTopic.topic_id)
        .where(
            Subscriber.status == SubscriberStatus.active,
            or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= on),
            which,
        )
        .order_by(Subscriber.id, Topic.position, Topic.id)
        .execution_options(yield_per=STREAM_CHUNK)
    )
    # On the session's connection, not through the ORM: plain rows of columns, which the ORM's
    # result wrapping would only slow down (a third of the client's time for a big list).
    yield from session.connection().execute(query)  # rows unpack as tuples


class SubscriptionRequest(NamedTuple):
    """What a web request to subscribe found or made, and whether it may send a confirmation."""

    subscriber: Subscriber
    confirmation_claimed: bool
    """The right to send one now was taken (`_claim_confirmation`), at the moment given."""


def request_subscription(
    session: Session,
    email: str,
    topics: list[Topic],
    language: str,
    now: datetime,
    window: timedelta,
) -> SubscriptionRequest:
    """The subscriber a web request to subscribe is for, logged; a new address is `pending`,
    with the right to send its confirmation at `now` taken by the same INSERT; a known one is
    claimed by `_claim_confirmation` (none went out within `window`).

    Nothing about a known address changes here: its topics and language change only when the
    confirmation link is used, so a stranger's request cannot alter someone's subscription.
    """
    subscriber = find_subscriber(session, email)
    new = None
    if subscriber is None:
        new = subscriber = _new_pending(session, email, language, topics, now)
    if subscriber is None:  # asked for by another request at the same moment
        subscriber = get_subscriber(session, email)
    detail = f"{', '.join(topic.name for topic in topics)} ({language})"
    log_event(session, subscriber, "requested", "web", detail)
    claimed = new is not None or _claim_confirmation(session, subscriber, now, window)
    return SubscriptionRequest(subscriber, claimed)


def _new_pending(
    session: Session, email: str, language: str, topics: list[Topic], confirmation_at: datetime
) -> Subscriber | None:
    """A new `pending` subscriber of this address with these topics, its confirmation claimed
    at `confirmation_at`; None when another request inserted it meanwhile (it waits for that
    request's commit and inserts nothing).

    One INSERT … ON CONFLICT DO NOTHING RETURNING, with no savepoint around it and no SELECT
    of the topics it has none of. The caller looked the address up first: on PostgreSQL a
    conflict still takes a number from the ids' sequence, which a known address asked for
    again and again must not use up."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = (
        dialect_insert(Subscriber)
        .values(
            email=email,
            email_key=email_key(email),
            language=language,
            status=SubscriberStatus.pending,
            confirmation_sent_at=confirmation_at,
        )
        .on_conflict_do_nothing(index_elements=[Subscriber.email_key])
        .returning(Subscriber)
        .options(lazyload(Subscriber.topics))  # none yet: set below, never SELECTed
    )
    subscriber = session.scalars(statement).first()
    if subscriber is not None:
        if topics:
            session.execute(
                insert(SubscriberTopic),
                [{"subscriber_id": subscriber.id, "topic_id": topic.id} for topic in topics],
            )
        set_committed_value(subscriber, "topics", list(topics))  # what was just written
    return subscriber


def _claim_confirmation(
    session: Session, subscriber: Subscriber, now: datetime, window: timedelta
) -> bool:
    """Take the right to send a confirmation now: False when one went out within `window`.

    One conditional UPDATE, so two requests at the same moment cannot both send.
    """
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber.id,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at <= now - window,
            ),
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    claimed = result.rowcount == 1
    if claimed:  # what the UPDATE wrote, without reading the row (and its topics) back
        set_committed_value(subscriber, "confirmation_sent_at", now)
    return claimed


def release_confirmation(session: Session, subscriber: Subscriber, sent_at: int) -> None:
    """The confirmation claimed at `sent_at` (Unix ms, as its job and link carry it) could not
    be sent: let the next request try again at once, unless a newer one was claimed since."""
    if confirmation_matches(subscriber, sent_at):
        subscriber.confirmation_sent_at = None


def confirmation_matches(subscriber: Subscriber, sent_at: int) -> bool:
    """Whether a confirmation link (sent at `sent_at`, Unix ms) is the subscriber's latest.

    An older link, or any link after the address left the list, no longer counts.
    """
    latest = subscriber.confirmation_sent_at
    return latest is not None and milliseconds(latest) == sent_at


def milliseconds(moment: datetime) -> int:
    """Unix time in whole milliseconds (what a link carries of a moment), exactly."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def confirm_subscription(
    session: Session,
    subscriber: Subscriber,
    topics: list[Topic],
    language: str,
    *,
    schedule: Schedule | None,
    clock: SendClock,
) -> None:
    """Make a web subscription active with the confirmed topics, language and rhythm (None:
    a link from before rhythms, theirs stays); logged."""
    subscriber.topics, subscriber.language = topics, language
    subscriber.confirmed_at = utcnow()
    if schedule is not None:
        set_schedule(subscriber, schedule, clock)
    if subscriber.status != SubscriberStatus.active:
        subscriber.status = SubscriberStatus.active
        subscriber.paused_until = None
        subscriber.bounce_count = 0
    detail = f"{', '.join(topic.name for topic in topics)} ({language})"
    detail += f"; {clock.describe(schedule_of(subscriber))}"
    log_event(session, subscriber, "confirmed", "web", detail)


def change_preferences(
    session: Session,
    subscriber: Subscriber,
    topics: list[Topic],
    language: str,
    source: str,
    mail_format: MailFormat | None = None,
    *,
    follows: Iterable[str] | None = None,
    ranking: bool | None = None,
    schedule: Schedule | None = None,
    clock: SendClock | None = None,
) -> bool:
    """New topics, language and (unless None) mail format, followed authors, ranking switch
    and rhythm (with the `clock` that says when it makes them due), logged as one change;
    False when nothing changed. The detail names the format, the follows, the ranking and the
    rhythm only when they change.

    The names to follow are checked first: one that cannot be followed raises `InvalidInput`
    and changes nothing.
    """
    wanted = None if follows is None else followed_names(follows)
    if mail_format is None:
        mail_format = subscriber.format
    if ranking is None:
        ranking = subscriber.ranking
    if schedule is None:
        schedule = schedule_of(subscriber)
    elif clock is None:
        raise ValueError("a rhythm is stored with the clock that says when the reader is due")
    before = (
        [topic.id for topic in subscriber.topics],
        subscriber.language,
        subscriber.format,
        subscriber.ranking,
        schedule_of(subscriber),
    )
    follows_change = wanted is not None and set(wanted) != {
        follow.name_key for follow in follows_of(session, subscriber.id)
    }
    after = ([topic.id for topic in topics], language, mail_format, ranking, schedule)
    if before == after and not follows_change:
        return False
    detail = f"{', '.join(topic.name for topic in topics)} ({language})"
    if mail_format != subscriber.format:
        detail += f"; format {mail_format}"
    if follows_change:
        set_follows(session, subscriber.id, wanted.values())
        detail += f"; follows {', '.join(wanted.values()) or 'no one'}"
    if ranking != subscriber.ranking:
        detail += f"; ranking {'on' if ranking else 'off'}"
    if clock is not None and set_schedule(subscriber, schedule, clock):
        detail += f"; {clock.describe(schedule)}"
    subscriber.topics, subscriber.language = topics, language
    subscriber.format, subscriber.ranking = mail_format, ranking
    log_event(session, subscriber, "changed", source, detail)
    return True


def edit_subscriber(
    subscriber: Subscriber,
    topics: list[Topic],
    *,
    language: str | None = None,
    mail_format: MailFormat | None = None,
    name: str | None = None,
) -> None:
    """The operator's edit: new topics, and each of language, format and name unless None."""
    subscriber.topics = topics
    if language is not None:
        subscriber.language = language
    if mail_format is not None:
        subscriber.format = mail_format
    if name is not None:
        subscriber.name = name


def pause_subscriber(
    session: Session, subscriber: Subscriber, until: date | None, source: str
) -> None:
    """No digest before `until`; None resumes at once. Logged as paused or resumed."""
    if subscriber.paused_until == until:
        return
    subscriber.paused_until = until
    if until is None:
        log_event(session, subscriber, "resumed", source)
    else:
        log_event(session, subscriber, "paused", source, f"until {until.isoformat()}")


def resubscribe(session: Session, subscriber: Subscriber, source: str) -> bool:
    """An address that left (or bounced) comes back, by its owner's act (the preferences page)
    or an operator's (`subscribers edit --resubscribe`); logged. Its old hard failures no
    longer count: one more must not bounce it again."""
    subscriber.bounce_count = 0
    subscriber.paused_until = None
    return set_status(session, subscriber, SubscriberStatus.active, source, "came back")


def topics_by_subscriber_language(session: Session) -> dict[str, set[int]]:
    """Each language active subscribers read, with the topics they follow."""
    rows = session.execute(
        select(Subscriber.language, SubscriberTopic.topic_id)
        .join(SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id)
        .where(Subscriber.status == SubscriberStatus.active)
    )
    found: dict[str, set[int]] = {}
    for language, topic_id in rows:
        found.setdefault(language, set()).add(topic_id)
    return found
