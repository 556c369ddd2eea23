"""Double opt-in: a web request to subscribe, its one confirmation email, and confirming.

A request never changes a known address's subscription: what was asked for (topics, language,
rhythm) travels inside the signed, expiring confirmation link and takes effect only when the link is
used. A new address is stored as `pending`, which receives nothing but that one email; further
requests within NEWSLETTER_CONFIRM_WINDOW send none (no mail-bombing through the form). The
answer to the person asking is the same whatever the address (see `web.subscribe`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.outgoing import Outgoing, SendResult
from newsletter.delivery.transports import transport_from_settings
from newsletter.errors import InvalidInput, InvalidToken, NewsletterError
from newsletter.intake.rhythm import SendClock, normalise_cadence, normalise_zone
from newsletter.intake.subscribers import LANGUAGE_CHOICES
from newsletter.message.compose import compose
from newsletter.models import Subscriber, Topic, utcnow
from newsletter.render.environment import render_template
from newsletter.render.mjml import mjml_to_email
from newsletter.schedules import Schedule
from newsletter.tokens import CONFIRM, make_token, read_token

log = logging.getLogger(__name__)

CONFIRM_HTML_TEMPLATE = "email/confirm.mjml.j2"
CONFIRM_TEXT_TEMPLATE = "email/confirm.txt.j2"


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation link asks for: this subscriber, these topics, this language, this
    rhythm."""

    public_id: str
    topic_ids: tuple[int, ...]
    language: str
    sent_at: int
    """When its email was sent (Unix milliseconds): only the latest link of an address counts."""
    schedule: Schedule | None = None
    """How often and when; None in a link from before rhythms (the reader's own then stays)."""

    def token(self, secret: str) -> str:
        payload = {
            "id": self.public_id,
            "topics": list(self.topic_ids),
            "lang": self.language,
            "sent": self.sent_at,
        }
        if self.schedule is not None:
            rhythm = self.schedule
            payload["rhythm"] = [str(rhythm.cadence), rhythm.hour, rhythm.day, rhythm.zone]
        return make_token(secret, CONFIRM, payload)

    @classmethod
    def read(cls, secret: str, token: str, max_age: float) -> Confirmation:
        """The confirmation in a link; InvalidToken (ExpiredToken when too old) otherwise."""
        payload = read_token(secret, CONFIRM, token, max_age=max_age, expect=dict)
        try:
            topic_ids = tuple(int(topic_id) for topic_id in payload["topics"])
            confirmation = cls(
                str(payload["id"]),
                topic_ids,
                str(payload["lang"]),
                int(payload["sent"]),
                _schedule_of(payload.get("rhythm")),
            )
        except (KeyError, TypeError, ValueError, AttributeError, InvalidInput) as error:
            raise InvalidToken("this confirm link is not valid") from error
        return confirmation


def _schedule_of(value: list | None) -> Schedule | None:
    """A link's rhythm, checked again (signed, but the zone database may have changed since)."""
    if value is None:
        return None
    cadence, hour, day, zone = value
    if (hour is not None and hour not in range(24)) or (day is not None and day not in range(7)):
        raise ValueError(f"no such hour or weekday: {hour}, {day}")
    return Schedule(
        normalise_cadence(cadence), hour, day, None if zone is None else normalise_zone(zone)
    )


# ---------------------------------------------------------------- asking


SENT, HELD_BACK, FAILED, REFUSED = "sent", "held back", "failed", "refused"


def request(
    settings: Settings,
    email: str,
    topic_ids: list[int],
    language: str,
    now: datetime | None = None,
    *,
    schedule: Schedule | None = None,
) -> str:
    """Handle a request to subscribe `email`: `SENT`, `HELD_BACK` (one was sent within the
    window), `REFUSED` (never will: the relay refused the address for good, or cannot carry
    it) or `FAILED` (anything else: the mail server could not take it now, or refuses what is
    the operator's to fix, the sender or the message; the next request may try again).

    `email` is normalised and `topic_ids` are known ids (the caller checked both).
    """
    now = (now or utcnow()).astimezone(UTC)
    sent_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what a link can carry
    window = timedelta(seconds=settings.confirm_window)
    with session_scope(settings) as session:
        topics = store.topics_by_ids(session, topic_ids)
        subscriber = store.request_subscription(session, email, topics, language)
        if not store.claim_confirmation(session, subscriber, sent_at, window):
            store.log_event(
                session, subscriber, "confirmation held back", "web", "one was sent recently"
            )
            return HELD_BACK
        confirmation = Confirmation(
            subscriber.public_id,
            tuple(topic.id for topic in topics),
            language,
            store.milliseconds(sent_at),
            schedule,
        )
        message = confirmation_message(settings, subscriber.email, confirmation, topics)
        subscriber_id = subscriber.id
    # Sent outside the unit of work: no database lock is held while the mail server answers.
    result = _send(settings, message)
    with session_scope(settings) as session:
        subscriber = store.subscriber_by_id(session, subscriber_id)
        if subscriber is not None and result.ok:
            store.log_event(session, subscriber, "confirmation sent", "web", result.detail)
        elif subscriber is not None:
            store.release_confirmation(session, subscriber, sent_at)
            store.log_event(session, subscriber, "confirmation failed", "web", result.detail)
    if result.ok:
        return SENT
    if result.permanent and result.stage == "rcpt":
        return REFUSED
    if result.permanent:
        # Not the visitor's doing (a sender the relay does not accept, a message it refuses):
        # they are asked to come back later, and whoever runs the service must act.
        step = f"at {result.stage.upper()}" if result.stage else "for good"
        log.error(
            "confirmation to %s refused %s, not for its address (check NEWSLETTER_FROM and the"
            " relay): %s",
            email,
            step,
            result.detail,
        )
    return FAILED


def confirmation_message(
    settings: Settings, email: str, confirmation: Confirmation, topics: list[Topic]
) -> EmailMessage:
    """The confirmation email: text and HTML, no list headers (it is not list mail)."""
    url = f"{settings.base_url}/confirm/{confirmation.token(settings.secret())}"
    context = {
        "sender_name": settings.sender_name,
        "confirm_url": url,
        "topic_names": [topic.name for topic in topics],
        "language_name": LANGUAGE_CHOICES.get(confirmation.language, confirmation.language),
        "expires_in": _duration(settings.confirm_max_age),
    }
    html = mjml_to_email(render_template(CONFIRM_HTML_TEMPLATE, context))
    return compose(
        sender=settings.from_address,
        to=email,
        subject=f"Confirm your subscription to {settings.sender_name}",
        html=html,
        text=render_template(CONFIRM_TEXT_TEMPLATE, context),
        message_id=make_msgid(domain=settings.sender_domain),
        list_id=None,
        unsubscribe_url=None,
        unsubscribe_mailto=None,
    )


def _send(settings: Settings, message: EmailMessage) -> SendResult:
    """Deliver one message now, through the configured SMTP relay or the outbox; whatever
    goes wrong is a failed result (so the caller always releases what it claimed)."""
    transport = None
    try:
        transport = transport_from_settings(settings)
        result = next(iter(transport.send([Outgoing.of(0, message)])))
    except (NewsletterError, OSError) as error:
        log.warning("confirmation to %s not sent: %s", message["To"], error)
        return SendResult(0, ok=False, permanent=False, detail=str(error)[:500])
    except Exception as error:  # a bug of ours must not keep the address's window claimed
        log.exception("confirmation to %s not sent", message["To"])
        return SendResult(0, ok=False, permanent=False, detail=f"{type(error).__name__}: {error}")
    finally:
        if transport is not None:
            transport.close()
    if not result.ok:
        log.warning("confirmation to %s refused: %s", message["To"], result.detail)
    return result


def _duration(seconds: float) -> str:
    """`2 days`, `1 day`, `6 hours`, `30 minutes`."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{int(seconds)} seconds"


# ---------------------------------------------------------------- confirming


@dataclass(frozen=True)
class Pending:
    """A confirmation link that still works, with what it would confirm."""

    confirmation: Confirmation
    email: str
    topic_names: tuple[str, ...]
    language: str
    used: bool
    """The link was used already (a second click): confirming again changes nothing."""


def check(settings: Settings, token: str) -> Pending:
    """What a confirmation link would confirm; InvalidToken when it is not (or no longer) good.

    A link stops counting when a newer one was sent, when the address left the list after it,
    or when none of its topics exist any more.
    """
    confirmation = Confirmation.read(settings.secret(), token, settings.confirm_max_age)
    with session_scope(settings) as session:
        subscriber, topics = _usable(session, confirmation)
        return Pending(
            confirmation,
            subscriber.email,
            tuple(topic.name for topic in topics),
            confirmation.language,
            _used(subscriber, confirmation),
        )


def confirm(settings: Settings, token: str) -> str:
    """Use a confirmation link: the subscriber's public id; InvalidToken as `check`."""
    confirmation = Confirmation.read(settings.secret(), token, settings.confirm_max_age)
    with session_scope(settings) as session:
        subscriber, topics = _usable(session, confirmation)
        if not _used(subscriber, confirmation):
            store.confirm_subscription(
                session,
                subscriber,
                topics,
                confirmation.language,
                schedule=confirmation.schedule,
                clock=SendClock.of(settings),
            )
        return subscriber.public_id


def _used(subscriber: Subscriber, confirmation: Confirmation) -> bool:
    # Confirmed since this link was sent: a second click must not undo later changes.
    confirmed = subscriber.confirmed_at
    return confirmed is not None and store.milliseconds(confirmed) >= confirmation.sent_at


def _usable(session, confirmation: Confirmation) -> tuple[Subscriber, list[Topic]]:
    subscriber = store.subscriber_by_public_id(session, confirmation.public_id)
    if subscriber is None or not store.confirmation_matches(subscriber, confirmation.sent_at):
        raise InvalidToken("this confirm link has been replaced or withdrawn")
    topics = store.topics_by_ids(session, confirmation.topic_ids)
    if not topics:
        raise InvalidToken("the topics of this confirm link no longer exist")
    return subscriber, topics
