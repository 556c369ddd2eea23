"""What an operator does to subscribers, from the command line or the API: a subscriber as a
row of plain values, an edit (a CSV's import is `subscriber_import`). One place, so both doors
accept and refuse the same things with the same words."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import SubscriberEdit
from newsletter.models import Subscriber
from newsletter.schedules import WEEKDAYS, zone_named
from newsletter.store.follows import add_follows, follow_names_of, remove_follows
from newsletter.store.subscribers import log_event, schedule_of, set_schedule
from newsletter.store.subscriptions import edit_subscriber, resubscribe
from newsletter.store.topics import get_topics


def subscriber_row(subscriber: Subscriber, clock: SendClock, follows: tuple[str, ...] = ()) -> dict:
    """A subscriber in plain values: `subscribers list --json`, the export and the API."""
    schedule = schedule_of(subscriber)
    due = subscriber.next_send_at
    zone = zone_named(schedule.zone or clock.zone)
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "topics": [topic.name for topic in subscriber.topics],
        "language": subscriber.language,
        "format": subscriber.format.value,
        "follows": list(follows),
        "cadence": subscriber.cadence.value,
        "day": WEEKDAYS[schedule.day or 0] if schedule.cadence == "weekly" else None,
        "hour": schedule.hour,
        "timezone": schedule.zone,
        "rhythm": clock.describe(schedule),
        # When they are next due, in their own zone; None: whenever a digest is built.
        "next_send_at": due.astimezone(zone).isoformat(timespec="minutes") if due else None,
        "status": subscriber.status.value,
        "created_at": subscriber.created_at.isoformat(timespec="seconds"),
    }


def subscriber_row_of(session: Session, subscriber: Subscriber, clock: SendClock) -> dict:
    return subscriber_rows(session, [subscriber], clock)[0]


def subscriber_rows(
    session: Session, subscribers: list[Subscriber], clock: SendClock
) -> list[dict]:
    follows = follow_names_of(session, (s.id for s in subscribers))
    return [subscriber_row(s, clock, follows[s.id]) for s in subscribers]


def apply_subscriber_edit(
    session: Session, subscriber: Subscriber, edit: SubscriberEdit, *, clock: SendClock, source: str
) -> dict:
    """Apply an operator's edit and log it as one `changed` event; the subscriber's row after.
    Raises (and changes nothing) when it would leave them without a topic."""
    schedule = edit.schedule.applied_to(schedule_of(subscriber))
    topics = {t.id: t for t in subscriber.topics}
    for topic in get_topics(session, edit.add_topics):
        topics[topic.id] = topic
    for topic in get_topics(session, edit.remove_topics):
        topics.pop(topic.id, None)
    if not topics:
        raise InvalidInput("a subscriber needs at least one topic (or use `subscribers remove`)")
    edit_subscriber(
        subscriber,
        list(topics.values()),
        language=edit.language,
        mail_format=edit.format,
        name=edit.name,
    )
    if edit.resubscribe:
        resubscribe(session, subscriber, source)
    remove_follows(session, subscriber.id, edit.unfollow)
    add_follows(session, subscriber.id, edit.follow)
    rhythm_changed = set_schedule(subscriber, schedule, clock)
    row = subscriber_rows(session, [subscriber], clock)[0]
    detail = f"{', '.join(row['topics'])} ({row['language']}, {row['format']})"
    if edit.follow or edit.unfollow:
        detail += f"; follows {', '.join(row['follows']) or 'no one'}"
    if rhythm_changed:
        detail += f"; {row['rhythm']}"
    log_event(session, subscriber, "changed", source, detail)
    return row
