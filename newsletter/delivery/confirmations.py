"""The confirmation email of the double opt-in: what its link carries (`Confirmation`), the
message, and sending one that a web request claimed (`send_claimed`), wherever it runs: a
worker's task (`worker.tasks.send_confirmation`) or, under `newsletter serve` alone, a thread
of the web process (see `web.optin`).

A request to subscribe claims the right to send (`store.request_subscription`) and hands a
`ConfirmationJob` on; the sending happens after the answer, so a slow or absent mail server
never holds a web worker. Sending checks the claim is still the address's latest (a job run
twice, or after the address left, sends nothing), and on failure lets the next request try
again at once (`store.release_confirmation`), once no try is left.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.outgoing import Outgoing, SendResult
from newsletter.delivery.transports import transport_from_settings
from newsletter.errors import InvalidInput, InvalidToken, NewsletterError
from newsletter.intake.rhythm import normalise_cadence, normalise_zone
from newsletter.intake.subscribers import LANGUAGE_CHOICES
from newsletter.message.compose import compose
from newsletter.models import Topic
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


# ---------------------------------------------------------------- sending a claimed one

SENT, RETRY, FAILED, REFUSED = "sent", "retry", "failed", "refused"


@dataclass(frozen=True)
class ConfirmationJob:
    """A confirmation to send: to this subscriber, the link of `confirmation` (plain values,
    so a queue can carry it: `as_dict`, `of`)."""

    subscriber_id: int
    public_id: str
    topic_ids: tuple[int, ...]
    language: str
    sent_at: int
    schedule: tuple | None = None
    """(cadence, hour, day, zone), or None."""

    @classmethod
    def of(cls, subscriber_id: int, confirmation: Confirmation) -> ConfirmationJob:
        rhythm = confirmation.schedule
        schedule = None
        if rhythm is not None:
            schedule = (str(rhythm.cadence), rhythm.hour, rhythm.day, rhythm.zone)
        return cls(
            subscriber_id, confirmation.public_id, tuple(confirmation.topic_ids),
            confirmation.language, confirmation.sent_at, schedule,
        )  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ConfirmationJob:
        schedule = values.get("schedule")
        return cls(
            int(values["subscriber_id"]), str(values["public_id"]),
            tuple(int(topic_id) for topic_id in values["topic_ids"]), str(values["language"]),
            int(values["sent_at"]), tuple(schedule) if schedule is not None else None,
        )  # fmt: skip

    def confirmation(self) -> Confirmation:
        schedule = None if self.schedule is None else _schedule_of(list(self.schedule))
        return Confirmation(self.public_id, self.topic_ids, self.language, self.sent_at, schedule)


def send_claimed(settings: Settings, job: ConfirmationJob, *, last_try: bool = True) -> str:
    """Send the confirmation a request claimed: `SENT`; `REFUSED` (the relay refused the
    address for good, or cannot carry it) or `FAILED` (anything else), the claim released
    either way; `RETRY` when the mail server could not take it now and this is not the
    `last_try` (the claim is kept: further requests are held back meanwhile).

    Nothing is sent when the claim is no longer the address's latest (sent already by a
    first run of this job, replaced, or the address left): `SENT` then too.
    """
    with session_scope(settings) as session:
        subscriber = store.subscriber_by_id(session, job.subscriber_id)
        if subscriber is None or not store.confirmation_matches(subscriber, job.sent_at):
            return SENT
        topics = store.topics_by_ids(session, list(job.topic_ids))
        email = subscriber.email
        message = confirmation_message(settings, email, job.confirmation(), topics)
    # Sent outside the unit of work: no database lock is held while the mail server answers.
    result = _send(settings, message)
    retry = not result.ok and not result.permanent and not last_try
    with session_scope(settings) as session:
        subscriber = store.subscriber_by_id(session, job.subscriber_id)
        if subscriber is not None and result.ok:
            store.log_event(session, subscriber, "confirmation sent", "web", result.detail)
        elif subscriber is not None:
            if not retry:
                store.release_confirmation(session, subscriber, job.sent_at)
            detail = f"{result.detail} (trying again)" if retry else result.detail
            store.log_event(session, subscriber, "confirmation failed", "web", detail)
    if result.ok:
        return SENT
    if retry:
        return RETRY
    if result.permanent and result.stage == "rcpt":
        return REFUSED
    if result.permanent:
        # Not the visitor's doing (a sender the relay does not accept, a message it refuses):
        # whoever runs the service must act.
        step = f"at {result.stage.upper()}" if result.stage else "for good"
        log.error(
            "confirmation to %s refused %s, not for its address (check NEWSLETTER_FROM and the"
            " relay): %s",
            email,
            step,
            result.detail,
        )
    return FAILED
