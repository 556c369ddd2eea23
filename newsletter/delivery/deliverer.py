"""Delivering a digest exactly once per subscriber, whatever crashes.

Each (digest, subscriber) has one delivery row: pending → sending → sent, failed or skipped.
A sender *claims* rows atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one UPDATE …
RETURNING on SQLite, whose writers take turns) and holds them under a lease; rows whose lease
expired (their worker died) are claimed again. Failures are written as soon as the server
answers; successes in groups of NEWSLETTER_RECORD_EVERY (or after NEWSLETTER_RECORD_INTERVAL
seconds, whichever comes first), one UPDATE a group, so that writing outcomes costs a few
statements per thousand messages. So that a worker that dies does not leave its unwritten
group to be sent again, each success is also noted at once in the send journal (Redis, or a
file: see `send_journal`), and every claim looks its rows up there before sending any: what a
dead worker can still have sent twice is the one message it had in flight, accepted by the
server and not yet noted. Each copy has the same Message-ID, so receivers recognise it.

Bodies are rendered once per segment (same topics, same language) and per process, encoded
once into a `MessageTemplate`, and each message's bytes are the template's with the
subscriber's address, Message-ID and links substituted: nothing is rendered or encoded per
message, and a message's bytes exist only while it is being sent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.bounces import apply_bounce, bounce_from_reply
from newsletter.delivery.journal import SendJournal, journal_for
from newsletter.delivery.outgoing import Outgoing, SendResult, Transport
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import SegmentKey
from newsletter.message.addresses import smtp_address
from newsletter.message.compose import compose, mailto_for, message_bytes
from newsletter.message.mail_merge import MessageTemplate
from newsletter.models import (
    DeliveryStatus,
    MailFormat,
    SubscriberStatus,
    utcnow,
)
from newsletter.render.email import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    WEB_VERSION_PLACEHOLDER,
    RenderedBody,
    personalise,
    render_email,
)
from newsletter.store import ClaimedDelivery
from newsletter.tokens import DigestLinks

Progress = Callable[[int], None]

log = logging.getLogger(__name__)


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
    recovered: int = 0
    """Rows a sender that died had sent without marking them, found in the send journal."""
    failures: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        for name in ("sent", "failed", "deferred", "skipped", "bounced", "recovered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)


BODY_FIELDS = {
    "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
    "preferences_url": PREFERENCES_PLACEHOLDER,
    "web_version_url": WEB_VERSION_PLACEHOLDER,
}
"""The per-subscriber links of a rendered body, by the name `MessageTemplate` fills in."""

NOT_SUBSCRIBED = "not sent: no longer subscribed"


class Deliverer:
    """Sends one digest's claimed deliveries; keeps its segments' contents and templates.

    A process keeps one `MessageTemplate` per segment it has sent to (about one message's
    size each, a few hundred at most), so rows claimed in any order never render twice.
    """

    def __init__(
        self,
        settings: Settings,
        digest_id: int,
        transport: Transport,
        *,
        edition: Edition | None = None,
        worker: str | None = None,
    ) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.transport = transport
        self.worker = worker or worker_name()
        self._edition = edition
        self._links: DigestLinks | None = None
        self._templates: dict[tuple[SegmentKey, MailFormat], MessageTemplate] = {}
        self._bodies: OrderedDict[SegmentKey, RenderedBody] = OrderedDict()
        # The Date of this sender's messages: when it began (headers are composed once).
        self._date = datetime.now(UTC)
        self._sender = settings.sender_email  # a property that parses NEWSLETTER_FROM: once
        self._journal: SendJournal | None = None
        self._outcomes = _Outcomes(self)

    @property
    def journal(self) -> SendJournal:
        """Where this sender notes each message the server accepted (made on first use)."""
        if self._journal is None:
            self._journal = journal_for(self.settings, self.digest_id, self.worker)
        return self._journal

    # ---------------------------------------------------------------- one batch

    def deliver_batch(self, limit: int, progress: Progress | None = None) -> DeliveryReport:
        """Claim up to `limit` due deliveries and send them; an empty report when none is due.

        However the batch ends (an error, SIGINT), the outcomes known are written and the rows
        not sent are handed back, so the next run need not wait for the lease (SIGKILL leaves
        that to the lease, and the sends not written yet to the send journal).
        """
        report = DeliveryReport()
        outcomes = self._outcomes.start(report, progress)
        claimed_at = time.monotonic()
        claimed = self._claim(limit, report, progress)
        if not claimed:
            self.journal.close()
            return report
        rows = self._skip_unsubscribed(claimed, report, progress)
        unsent = {row.delivery_id: row for row in rows}
        try:
            messages = self._messages(rows, unsent, outcomes, claimed_at)
            for result in self.transport.send(messages):
                outcomes.add(result, unsent.pop(result.key))
        except BaseException:
            try:
                outcomes.write()
            finally:
                try:
                    self._release(list(unsent))
                finally:
                    self.journal.close()  # its file stays if the sends could not be written
            raise
        try:
            outcomes.write()
        finally:
            self.journal.close()
        return report

    def close(self) -> None:
        """This sender is done with the digest: let go of its journal's file."""
        if self._journal is not None:
            self._journal.close()

    def message(self, row: ClaimedDelivery) -> Outgoing:
        """One subscriber's message: their segment's template with their values substituted
        (once `prepare` has read what the row needs)."""
        key = (row.topic_ids, row.language)
        unsubscribe, preferences, web_version = self._links.links(row.public_id)
        message_id = row.message_id if row.message_id.startswith("<") else f"<{row.message_id}>"
        mailto = mailto_for(self._sender, unsubscribe.rsplit("/", 1)[1])
        recipient = smtp_address(row.email)  # an internationalised domain in IDNA
        if recipient.isascii():
            data = self._template(key, row.format).bytes_for(
                {
                    "to": recipient,
                    "message_id": message_id,
                    "unsubscribe_url": unsubscribe,
                    "unsubscribe_mailto": mailto,
                    "preferences_url": preferences,
                    "web_version_url": web_version,
                }
            )
        else:  # a non-ASCII local part: UTF-8 headers, composed the slow way, which knows how
            body = personalise(self._body(key), unsubscribe, preferences, web_version)
            composed = self._compose(recipient, message_id, (unsubscribe, mailto), body, row.format)
            data = message_bytes(composed)
        return Outgoing(row.delivery_id, recipient, self._sender, message_id, data)

    def _messages(
        self,
        rows: list[ClaimedDelivery],
        unsent: dict[int, ClaimedDelivery],
        outcomes: _Outcomes,
        claimed_at: float,
    ) -> Iterator[Outgoing]:
        """Each message as it is about to go, made just then, unless another worker has taken
        its row over.

        A batch can outlast its lease (a slow relay, a send rate shared by many workers), and
        then another worker may claim the rows not sent yet. So whenever half the lease has
        passed, the outcomes known are written and the claim on the rows not sent yet is
        renewed, and rows that another worker took meanwhile are left to it. (The lease must
        still outlast one message, its pace wait and the SMTP timeout included, plus
        NEWSLETTER_RECORD_INTERVAL.)
        """
        half_lease = self.settings.delivery_lease / 2
        renew_at = claimed_at + half_lease
        held = set(unsent)
        for row in rows:
            outcomes.write_when_due()
            if time.monotonic() >= renew_at:
                outcomes.write()
                renew_at = time.monotonic() + half_lease
                held = self._renew(list(unsent))
            if row.delivery_id not in held:
                unsent.pop(row.delivery_id, None)  # not ours to send, nor to release
                continue
            try:
                message = self.message(row)
            except Exception as error:  # one subscriber's message, never the batch
                log.debug("delivery %d not built", row.delivery_id, exc_info=True)
                detail = f"not sent: the message could not be built: {error}"
                unsent.pop(row.delivery_id, None)
                outcomes.add(SendResult(row.delivery_id, False, True, detail), row)
                continue
            yield message

    def _renew(self, delivery_ids: list[int]) -> set[int]:
        lease_until = utcnow() + timedelta(seconds=self.settings.delivery_lease)
        with session_scope(self.settings) as session:
            return store.renew_claims(session, delivery_ids, self.worker, lease_until)

    def _release(self, delivery_ids: list[int]) -> None:
        with session_scope(self.settings) as session:
            store.release_deliveries(session, delivery_ids, self.worker)

    def _claim(
        self, limit: int, report: DeliveryReport, progress: Progress | None
    ) -> list[ClaimedDelivery]:
        """Claim due rows and read what sending them needs: two statements.

        Before any is sent, the claimed rows are looked up in the send journal: a row found
        there was sent by a sender that died before writing it (its lease ended, so it was due
        again). Those are marked sent in the same unit of work, one UPDATE more after a crash
        only, and others claimed in their place. A dead sender's file journal is marked sent
        whole, its rows this claim did not take in a unit of work of their own.
        """
        lease = timedelta(seconds=self.settings.delivery_lease)
        while True:
            with session_scope(self.settings) as session:
                ids = store.claim_deliveries(
                    session, self.digest_id, self.worker, limit, utcnow(), lease
                )
                journaled = self.journal.recorded_among(ids) if ids else {}
                ours = {key: journaled[key] for key in ids if key in journaled}
                recovered = store.finish_sent(session, ours) if ours else 0
                rows = store.claimed_rows(session, [key for key in ids if key not in ours])
                self.prepare(session, rows)
            if len(ours) < len(journaled):  # a dead sender's other rows (its whole file)
                others = {key: reply for key, reply in journaled.items() if key not in ours}
                marked = self._mark_others_sent(others)
                if marked is None:
                    journaled = {}  # not in the database: left in the journal for a later claim
                recovered += marked or 0
            if journaled:
                self.journal.folded(journaled)  # only now that the database has them
            if recovered:
                log.info("%d deliveries found sent in the send journal, marked sent", recovered)
                report.recovered += recovered
                if progress is not None:
                    progress(recovered)
            if rows or not ids:
                return rows

    def _mark_others_sent(self, others: dict[int, str]) -> int | None:
        """Mark sent the rows a gone sender journaled beyond this claim: how many, or None
        when that failed.

        Apart from the claim: rows another sender may be claiming at this moment are waited
        for, never while holding ours (no deadlock). Best effort: the claim is made, and its
        rows are to be sent now, not left `sending` until their lease ends because this
        failed; a row left is found in the journal by the claim that takes it.
        """
        try:
            with session_scope(self.settings) as session:
                return store.finish_sent(session, others)
        except Exception as error:
            log.debug("journaled deliveries not marked sent", exc_info=True)
            log.warning(
                "send journal: %d deliveries a gone sender had sent are not marked sent yet"
                " (%s); the claims that take them will",
                len(others),
                error,
            )
            return None

    def prepare(self, session: Session, rows: list[ClaimedDelivery]) -> None:
        """Read what `message` needs for these rows: the digest's edition on first use (unless
        it was given), the stored translations of languages not seen before."""
        if not rows:
            return
        settings = self.settings
        if self._edition is None:
            digest = store.digest_by_id(session, self.digest_id)
            self._edition = Edition.read(session, digest, EditionOptions.from_settings(settings))
        if self._links is None:
            issue_date = self._edition.issue_date
            self._links = DigestLinks(settings.base_url, settings.secret(), issue_date)
        self._edition.load_languages(session, {row.language for row in rows})

    def _skip_unsubscribed(
        self, rows: list[ClaimedDelivery], report: DeliveryReport, progress: Progress | None
    ) -> list[ClaimedDelivery]:
        """The rows to send; the others (the subscriber left, bounced, paused past the digest's
        day or follows no topic now) are marked skipped, in one statement."""
        issue_date = self._edition.issue_date
        sendable, skipped = [], []
        for row in rows:
            paused = row.paused_until is not None and row.paused_until > issue_date
            active = row.status == SubscriberStatus.active and row.topic_ids and not paused
            (sendable if active else skipped).append(row)
        if skipped:
            with session_scope(self.settings) as session:
                store.skip_deliveries(session, [row.delivery_id for row in skipped], NOT_SUBSCRIBED)
            report.skipped += len(skipped)
            if progress is not None:
                progress(len(skipped))
        return sendable

    def _template(self, key: SegmentKey, mail_format: MailFormat) -> MessageTemplate:
        """The segment's message in this format (plain text alone: the same text part)."""
        template = self._templates.get((key, mail_format))
        if template is None:
            body = self._body(key)
            settings = self.settings
            template = self._templates[(key, mail_format)] = MessageTemplate.build(
                sender=settings.from_address,
                subject=body.subject,
                html_body=body.html if mail_format == MailFormat.html else None,
                text_body=body.text,
                list_id=settings.list_id,
                body_fields=BODY_FIELDS,
                date=self._date,
            )
        return template

    def _body(self, key: SegmentKey) -> RenderedBody:
        """The segment's rendered body; the last few kept (templates are what is reused)."""
        body = self._bodies.get(key)
        if body is None:
            content = self._edition.content(*key)
            body = render_email(content, sender_name=self.settings.sender_name)
            self._bodies[key] = body
            if len(self._bodies) > 4:
                self._bodies.popitem(last=False)
        return body

    def _compose(
        self,
        to: str,
        message_id: str,
        unsubscribe: tuple[str, str],
        body: RenderedBody,
        mail_format: MailFormat,
    ):
        """The message composed whole; `unsubscribe` is (https URL, mailto)."""
        settings = self.settings
        return compose(
            sender=settings.from_address,
            to=to,
            subject=body.subject,
            html=body.html if mail_format == MailFormat.html else None,
            text=body.text,
            message_id=message_id,
            list_id=settings.list_id,
            unsubscribe_url=unsubscribe[0],
            unsubscribe_mailto=unsubscribe[1],
            date=self._date,
        )

    # ---------------------------------------------------------------- outcomes

    def _record_failure(self, result: SendResult, row: ClaimedDelivery, report: DeliveryReport):
        """Write a failure at once: it may bounce the subscriber, and it is rare."""
        with session_scope(self.settings) as session:
            delivery = store.delivery_by_id(session, result.key)
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

    def _bounce(self, session, row: ClaimedDelivery, detail: str) -> str:
        """Count a server's 5xx reply against the address; a failure of ours (a message that
        could not be built, a relay without SMTPUTF8) has no reply code and is no bounce."""
        if not detail[:3].isdigit():
            return "ignored"
        bounce = bounce_from_reply(row.email, int(detail[:3]), detail[4:])
        return apply_bounce(session, bounce)


class _Outcomes:
    """A sender's outcomes: failures written at once, each success noted in the send journal
    at once and written to the database in groups.

    A group is written when it holds NEWSLETTER_RECORD_EVERY messages, or when its first is
    NEWSLETTER_RECORD_INTERVAL seconds old (checked as results come and before each message
    goes, so a slow relay still records promptly), or when the batch ends however it ends. A
    group whose write failed (the database was down) is kept, as its journal entries are, and
    written before the sender claims again: the journal and the group always agree.
    """

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        self.report = DeliveryReport()
        self.progress: Progress | None = None
        self.every = deliverer.settings.record_every
        self.interval = deliverer.settings.record_interval
        self.sent: dict[int, str] = {}
        self.since = 0.0

    def start(self, report: DeliveryReport, progress: Progress | None) -> _Outcomes:
        """A new batch's outcomes, once what an earlier batch could not write is written."""
        self.report, self.progress = report, progress
        self.write()
        return self

    def add(self, result: SendResult, row: ClaimedDelivery) -> None:
        if result.ok:
            if not self.sent:
                self.since = time.monotonic()
            self.sent[result.key] = result.detail
            # Noted before the next message starts: if this process is killed now, whoever
            # claims the row next finds it and does not send it again. If it cannot be noted
            # (Redis down), the batch ends here, and its sends, this one included, are written
            # as it ends.
            self.deliverer.journal.record(result.key, result.detail)
            if len(self.sent) >= self.every:
                self.write()
            else:
                self.write_when_due()
        else:
            self.deliverer._record_failure(result, row, self.report)
        if self.progress is not None:
            self.progress(1)

    def write_when_due(self) -> None:
        if self.sent and time.monotonic() - self.since >= self.interval:
            self.write()

    def write(self) -> None:
        """Mark the messages sent since the last write, in one UPDATE."""
        if not self.sent:
            return
        with session_scope(self.deliverer.settings) as session:
            marked = store.finish_sent(session, self.sent)
        self.deliverer.journal.written(self.sent)
        # A row another sender found in the journal and marked meanwhile (this one's lease
        # had ended) is counted there, as recovered, not here again.
        self.report.sent += marked
        self.sent = {}


# ---------------------------------------------------------------- until nothing is due


def until_none_due(batch: Callable[[], DeliveryReport], report: DeliveryReport) -> None:
    """Send batch after batch (`Deliverer.deliver_batch`, perhaps waiting out outages) until one
    finds nothing due, adding what each did to `report` as it goes."""
    while True:
        done = batch()
        report.add(done)
        if not (done.sent + done.failed + done.deferred + done.skipped):
            return


def deliver_all(
    settings: Settings,
    digest_id: int,
    transport: Transport,
    *,
    edition: Edition | None = None,
    progress: Progress | None = None,
    wait_for_retries: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send every due delivery of a digest, batch after batch.

    With `wait_for_retries`, temporary failures are retried here once their backoff has
    passed, and rows claimed by a worker that died are taken over once their lease expires;
    otherwise they are left to a later run (or a worker's next batch). `edition` is the digest's,
    when the caller has it (its readers told why some abstracts are not translated).
    """
    deliverer = Deliverer(settings, digest_id, transport, edition=edition)
    report = DeliveryReport()
    while True:
        until_none_due(partial(deliverer.deliver_batch, settings.send_batch_size, progress), report)
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
