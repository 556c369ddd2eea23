"""Delivering a digest exactly once per subscriber, whatever crashes.

Each (digest, subscriber) has one delivery row: pending → sending → sent, failed or skipped.
A sender *claims* rows atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one UPDATE …
RETURNING on SQLite, whose writers take turns) and holds them under a lease; rows whose lease
expired (their worker died) are claimed again. Each outcome is written as soon as the server
answers, so the only possible duplicate is the message a worker had handed to the server when
it died, before its row was marked: at most one per sending thread. Its Message-ID is the
same, so receivers recognise it.

Bodies are rendered once per segment (same topics, same language) and per process, and only
the per-subscriber parts are filled in per message.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.bounces import bounce_from_reply
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.digest import Segment, build_segments
from newsletter.mail import Outgoing, SendResult, Transport, compose
from newsletter.models import Delivery, DeliveryStatus, Digest, SubscriberStatus, utcnow
from newsletter.render import RenderedBody, personalise, render_email
from newsletter.tokens import preferences_url, unsubscribe_url, web_version_url
from newsletter.translations import translation_options

Progress = Callable[[int], None]


def segments_for(
    session: Session,
    settings: Settings,
    digest: Digest,
    *,
    notes: dict[tuple[str, str], str] | None = None,
    include_empty: bool | None = None,
) -> list[Segment]:
    """The digest's segments as the settings shape them: cap, links, translations, and
    whether subscribers with nothing new get a message (NEWSLETTER_SEND_EMPTY by default)."""
    return build_segments(
        session,
        digest,
        cap=settings.digest_max_per_topic,
        base_url=settings.base_url,
        include_empty=settings.send_empty if include_empty is None else include_empty,
        translation=translation_options(settings, notes),
    )


def worker_name() -> str:
    """Who holds a claim: host, process and thread, for `newsletter status` and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    bounced: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        for name in ("sent", "failed", "deferred", "skipped", "bounced"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    public_id: str
    message_id: str
    active: bool


class Deliverer:
    """Sends one digest's claimed deliveries; keeps its segments and rendered bodies."""

    def __init__(
        self,
        settings: Settings,
        digest_id: int,
        transport: Transport,
        *,
        notes: dict[tuple[str, str], str] | None = None,
        worker: str | None = None,
    ) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.transport = transport
        self.notes = notes
        self.worker = worker or worker_name()
        self._segment_of: dict[int, Segment] | None = None
        self._bodies: dict[tuple[tuple[int, ...], str], RenderedBody] = {}

    # ---------------------------------------------------------------- one batch

    def deliver_batch(self, limit: int, progress: Progress | None = None) -> DeliveryReport:
        """Claim up to `limit` due deliveries and send them; an empty report when none is due."""
        report = DeliveryReport()
        claimed_at = time.monotonic()
        claimed = self._claim(limit)
        if not claimed:
            return report
        segment_of = self._segments()
        outgoing: list[Outgoing] = []
        for row in claimed:
            segment = segment_of.get(row.subscriber_id)
            if not row.active or segment is None:
                self._skip(row, report, progress)
                continue
            outgoing.append(self._message(self._body(segment), row, segment.content.date))
        unrecorded = {message.key: message for message in outgoing}
        by_id = {row.delivery_id: row for row in claimed}
        try:
            for result in self.transport.send(self._still_held(outgoing, unrecorded, claimed_at)):
                self._record(result, by_id[result.key], report)
                unrecorded.pop(result.key)
                if progress is not None:
                    progress(1)
        except BaseException:
            # The server is gone or we are being stopped: hand back what was not recorded, so
            # the next run need not wait for the lease (SIGKILL leaves that to the lease).
            self._release(list(unrecorded))
            raise
        return report

    def _still_held(
        self, outgoing: list[Outgoing], unrecorded: dict[int, Outgoing], claimed_at: float
    ) -> Iterator[Outgoing]:
        """Each message as it is about to go, unless another worker has taken its row over.

        A batch can outlast its lease (a slow relay, a send rate shared by many workers), and
        then another worker may claim the rows not sent yet. So whenever half the lease has
        passed, the claim on the rows not yet recorded is renewed, and rows that another
        worker took meanwhile are left to it. (The lease must still outlast one message, its
        pace wait and the SMTP timeout included.)
        """
        half_lease = self.settings.delivery_lease / 2
        renew_at = claimed_at + half_lease
        held = set(unrecorded)
        for message in outgoing:
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + half_lease
                held = self._renew(list(unrecorded))
            if message.key in held:
                yield message
            else:
                unrecorded.pop(message.key, None)  # not ours to send, nor to release

    def _renew(self, delivery_ids: list[int]) -> set[int]:
        lease_until = utcnow() + timedelta(seconds=self.settings.delivery_lease)
        with session_scope(self.settings) as session:
            return store.renew_claims(session, delivery_ids, self.worker, lease_until)

    def _release(self, delivery_ids: list[int]) -> None:
        with session_scope(self.settings) as session:
            store.release_deliveries(session, delivery_ids, self.worker)

    def _claim(self, limit: int) -> list[_Claimed]:
        lease = timedelta(seconds=self.settings.delivery_lease)
        with session_scope(self.settings) as session:
            ids = store.claim_deliveries(
                session, self.digest_id, self.worker, limit, utcnow(), lease
            )
            rows = store.claimed_rows(session, ids)
            return [
                _Claimed(
                    delivery.id,
                    subscriber.id,
                    subscriber.email,
                    subscriber.public_id,
                    delivery.message_id,
                    subscriber.status == SubscriberStatus.active,
                )
                for delivery, subscriber in rows
            ]

    def _segments(self) -> dict[int, Segment]:
        if self._segment_of is None:
            with session_scope(self.settings) as session:
                digest = store.digest_by_id(session, self.digest_id)
                # Rows exist only where there was something to send: keep every segment.
                segments = segments_for(
                    session, self.settings, digest, notes=self.notes, include_empty=True
                )
            self._segment_of = {sid: seg for seg in segments for sid in seg.subscriber_ids}
        return self._segment_of

    def _body(self, segment: Segment) -> RenderedBody:
        key = (segment.topic_ids, segment.language)
        if key not in self._bodies:
            self._bodies[key] = render_email(segment.content, sender_name=self.settings.sender_name)
        return self._bodies[key]

    def _message(self, body: RenderedBody, row: _Claimed, issue_date: date) -> Outgoing:
        settings = self.settings
        base_url, secret = settings.base_url, settings.secret()
        link = unsubscribe_url(base_url, secret, row.public_id)
        personal = personalise(
            body,
            link,
            preferences_url(base_url, secret, row.public_id),
            web_version_url(base_url, secret, row.public_id, issue_date),
        )
        message = compose(
            sender=settings.from_address,
            to=row.email,
            subject=personal.subject,
            html=personal.html,
            text=personal.text,
            message_id=row.message_id,
            list_id=settings.list_id,
            unsubscribe_url=link,
            unsubscribe_mailto=f"mailto:{settings.sender_email}?subject=unsubscribe",
        )
        return Outgoing(key=row.delivery_id, recipient=row.email, message=message)

    # ---------------------------------------------------------------- outcomes

    def _skip(self, row: _Claimed, report: DeliveryReport, progress: Progress | None) -> None:
        with session_scope(self.settings) as session:
            store.finish_delivery(
                session, row.delivery_id, DeliveryStatus.skipped, "not sent: no longer subscribed"
            )
        report.skipped += 1
        if progress is not None:
            progress(1)

    def _record(self, result: SendResult, row: _Claimed, report: DeliveryReport) -> None:
        """Write one outcome the moment it is known (this is what bounds duplicates)."""
        with session_scope(self.settings) as session:
            if result.ok:
                store.finish_delivery(session, result.key, DeliveryStatus.sent, result.detail)
                report.sent += 1
                return
            delivery = session.get(Delivery, result.key)
            attempts = delivery.attempts + 1
            if result.permanent or attempts >= self.settings.smtp_max_attempts:
                store.finish_delivery(session, result.key, DeliveryStatus.failed, result.detail)
                report.failed += 1
                report.failures.append(f"{row.email}: {result.detail}")
                if result.permanent and self._bounce(session, row, result.detail) == "bounced":
                    report.bounced += 1
                return
            wait = self.settings.smtp_retry_backoff * 2 ** (attempts - 1)
            store.defer_delivery(
                session, result.key, result.detail, utcnow() + timedelta(seconds=wait)
            )
            report.deferred += 1

    def _bounce(self, session, row: _Claimed, detail: str) -> str:
        code = int(detail[:3]) if detail[:3].isdigit() else 550
        return store.record_bounce(session, bounce_from_reply(row.email, code, detail[4:]))


# ---------------------------------------------------------------- until nothing is due


def deliver_all(
    settings: Settings,
    digest_id: int,
    transport: Transport,
    *,
    notes: dict[tuple[str, str], str] | None = None,
    progress: Progress | None = None,
    wait_for_retries: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send every due delivery of a digest, batch after batch.

    With `wait_for_retries`, temporary failures are retried here once their backoff has
    passed, and rows claimed by a worker that died are taken over once their lease expires;
    otherwise they are left to a later run (or a worker's next batch).
    """
    deliverer = Deliverer(settings, digest_id, transport, notes=notes)
    report = DeliveryReport()
    while True:
        batch = deliverer.deliver_batch(settings.send_batch_size, progress)
        report.add(batch)
        if batch.sent + batch.failed + batch.deferred + batch.skipped:
            continue
        if not wait_for_retries:
            return report
        with session_scope(settings) as session:
            next_due = store.next_due_at(session, digest_id)
        if next_due is None:
            return report
        sleep(max(0.0, (next_due - utcnow()).total_seconds()) + 0.01)


def unfinished(settings: Settings, digest_id: int) -> tuple[int, datetime | None]:
    """How many deliveries are not finished, and when the next of them can be sent."""
    with session_scope(settings) as session:
        return store.count_unfinished(session, digest_id), store.next_due_at(session, digest_id)
