"""Double opt-in: a web request to subscribe, its one confirmation email, and confirming.

A request never changes a known address's subscription: what was asked for (topics, language,
rhythm) travels inside the signed, expiring confirmation link and takes effect only when the link is
used. A new address is stored as `pending`, which receives nothing but that one email; further
requests within NEWSLETTER_CONFIRM_WINDOW send none (no mail-bombing through the form). The
answer to the person asking is the same whatever the address (see `web.subscribe`).

The request claims the right to send and queues the email (`delivery.confirmations`): a worker
sends it (`worker.tasks.send_confirmation`), or, under `newsletter serve` alone (which runs no
worker), a thread of the web process (`BackgroundSender`). Either way the answer does not wait
for the mail server.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.confirmations import Confirmation, ConfirmationJob, send_claimed
from newsletter.errors import InvalidToken
from newsletter.intake.rhythm import SendClock
from newsletter.models import Subscriber, Topic, utcnow
from newsletter.schedules import Schedule

log = logging.getLogger(__name__)

Queue = Callable[[ConfirmationJob], None]
"""Where a claimed confirmation goes to be sent; raises when it cannot take it."""
QUEUE_KEY = "NEWSLETTER_CONFIRMATIONS"
"""The app's `Queue` (`create_app(confirmations=…)`): `to_worker` unless told otherwise."""


def to_worker(job: ConfirmationJob) -> None:
    """Queue the confirmation for a worker (Huey, on Redis or the SQLite file)."""
    from newsletter.worker import tasks  # the queue's connection, made on first use

    tasks.send_confirmation(job.as_dict())


class BackgroundSender:
    """Confirmations sent by a thread of this process, one at a time, after the answer: for
    `newsletter serve`, which runs no worker. A job left when the process ends is not sent;
    its claim lapses after NEWSLETTER_CONFIRM_WINDOW, when asking again sends a new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: queue.Queue[ConfirmationJob] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="Confirmations", daemon=True)
        self.thread.start()

    def __call__(self, job: ConfirmationJob) -> None:
        self.jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                send_claimed(self.settings, job)
            except Exception:  # a bug of ours, or the database away: the next job is tried
                log.exception("confirmation to subscriber %d not sent", job.subscriber_id)
            finally:
                self.jobs.task_done()


# ---------------------------------------------------------------- asking


QUEUED, HELD_BACK, FAILED = "queued", "held back", "failed"


def claim(
    session: Session,
    settings: Settings,
    email: str,
    topics: list[Topic],
    language: str,
    now: datetime | None = None,
    *,
    schedule: Schedule | None = None,
) -> ConfirmationJob | None:
    """A request to subscribe `email`, in the caller's unit of work (the one that read and
    checked its topics: one transaction a request): the subscriber it is for (a new address
    `pending`), logged, and the right to send its confirmation now, as the job to hand to
    `queue_claimed` once that work is committed; None when one was sent within the window
    (`HELD_BACK`, logged).

    `email` is normalised and `topics` are the session's own (the caller checked both).
    """
    now = (now or utcnow()).astimezone(UTC)
    sent_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what a link can carry
    window = timedelta(seconds=settings.confirm_window)
    subscriber, claimed = store.request_subscription(
        session, email, topics, language, sent_at, window
    )
    if not claimed:
        store.log_event(
            session, subscriber, "confirmation held back", "web", "one was sent recently"
        )
        return None
    confirmation = Confirmation(
        subscriber.public_id,
        tuple(topic.id for topic in topics),
        language,
        store.milliseconds(sent_at),
        schedule,
    )
    return ConfirmationJob.of(subscriber.id, confirmation)


def queue_claimed(settings: Settings, job: ConfirmationJob, send: Queue = to_worker) -> str:
    """Hand a claimed confirmation (`claim`, committed) to `send`: `QUEUED`, or `FAILED` when
    the queue did not take it (the claim is undone, so the next request may try again)."""
    try:
        send(job)
    except Exception as error:  # Redis away, the queue's file unwritable: asked again later
        log.warning("confirmation to subscriber %d not queued: %s", job.subscriber_id, error)
        with session_scope(settings) as session:
            subscriber = store.subscriber_by_id(session, job.subscriber_id)
            if subscriber is not None:
                store.release_confirmation(session, subscriber, job.sent_at)
                store.log_event(session, subscriber, "confirmation failed", "web", str(error))
        return FAILED
    return QUEUED


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
