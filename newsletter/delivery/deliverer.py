"""Delivering a digest exactly once per subscriber, whatever crashes: the batch loop.

Each (digest, subscriber) has one delivery row: pending → sending → sent, failed or skipped.
A batch claims due rows under a lease (`claims`), builds each message as it is about to go
(`messages`), hands them to the transport, and records each result (`outcomes`): failures at
once, successes in groups of NEWSLETTER_RECORD_EVERY (or after NEWSLETTER_RECORD_INTERVAL
seconds), one UPDATE a group, so that writing outcomes costs a few statements per thousand
messages. So that a worker that dies does not leave its unwritten group to be sent again, each
success is also noted at once in the send journal (`journal`: Redis, or a file), and every
claim looks its rows up there before sending any: what a dead worker can still have sent twice
is the one message it had in flight, accepted by the server and not yet noted. Each copy has
the same Message-ID, so receivers recognise it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.chat import ChatMessage, ChatSender
from newsletter.delivery.chat_messages import ChatMessages
from newsletter.delivery.claims import Claims, worker_name
from newsletter.delivery.events import SentNotice
from newsletter.delivery.journal import SendJournal, journal_for
from newsletter.delivery.messages import MessageBuilder
from newsletter.delivery.outcomes import DeliveryReport, Outcomes, Progress
from newsletter.delivery.outgoing import Outgoing, SendResult, Transport
from newsletter.digest.edition import Edition
from newsletter.models import SubscriberStatus, utcnow
from newsletter.store import ClaimedDelivery

log = logging.getLogger(__name__)

NOT_SUBSCRIBED = "not sent: no longer subscribed"


class Deliverer:
    """Sends one digest's claimed deliveries: claims (`claims`), messages (`messages`) and
    outcomes (`outcomes`), batch after batch."""

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
        self._journal: SendJournal | None = None
        self.notice = SentNotice(settings.base_url, digest_id)
        self.claims = Claims(settings, digest_id, self.worker, self.journal, self.notice)
        self.messages = MessageBuilder(settings, digest_id, edition)
        self.outcomes = Outcomes(settings, self.journal, self.notice)
        # Chat channels are subscribers too, with delivery rows like everyone's: their rows
        # are posted by the chat sender, never given to the mail transport.
        self.chat_messages = ChatMessages(self.messages)
        self.chat = ChatSender(settings, progress=self._note_progress)

    def journal(self) -> SendJournal:
        """Where this sender notes each message the server accepted (made on first use)."""
        if self._journal is None:
            self._journal = journal_for(self.settings, self.digest_id, self.worker)
        return self._journal

    def deliver_batch(self, limit: int, progress: Progress | None = None) -> DeliveryReport:
        """Claim up to `limit` due deliveries and send them; an empty report when none is due.

        However the batch ends (an error, SIGINT), the outcomes known are written and the rows
        not sent are handed back, so the next run need not wait for the lease (SIGKILL leaves
        that to the lease, and the sends not written yet to the send journal).
        """
        report = DeliveryReport()
        outcomes = self.outcomes.start(report, progress)
        claimed_at = time.monotonic()
        claimed = self.claims.take(limit, report, progress, self._prepare)
        if not claimed:
            self.journal().close()
            return report
        rows = self._skip_unsubscribed(claimed, report, progress)
        unsent = {row.delivery_id: row for row in rows}
        mail = [row for row in rows if row.channel is None]
        chat = [row for row in rows if row.channel is not None]
        try:
            if mail or not chat:
                messages = self._messages(mail, unsent, outcomes, claimed_at, self.messages.message)
                for result in self.transport.send(messages):
                    outcomes.add(result, unsent.pop(result.key))
            if chat:  # after the mail: a slow or failing channel holds up no reader's email
                posts = self._messages(
                    chat, unsent, outcomes, claimed_at, self.chat_messages.message
                )
                for result in self.chat.send(posts):
                    outcomes.add(result, unsent.pop(result.key))
        except BaseException:
            try:
                outcomes.write()
            finally:
                try:
                    self.claims.release(list(unsent))
                finally:
                    self.journal().close()  # its file stays if the sends could not be written
            raise
        try:
            outcomes.write()
        finally:
            self.journal().close()
        return report

    def close(self) -> None:
        """This sender is done with the digest: let go of its journal's file."""
        self.chat.close()
        if self._journal is not None:
            self._journal.close()

    def _prepare(self, session, rows: list[ClaimedDelivery]) -> None:
        self.messages.prepare(session, rows)
        self.chat_messages.prepare(session, rows)

    def _note_progress(self, delivery_id: int, detail: str) -> None:
        """A channel accepted another part of the row's message: noted on the row, so a retry
        goes on from there, and the row's claim renewed."""
        lease_until = utcnow() + timedelta(seconds=self.settings.delivery_lease)
        with session_scope(self.settings) as session:
            store.note_delivery_progress(session, delivery_id, self.worker, detail, lease_until)

    def _messages(
        self,
        rows: list[ClaimedDelivery],
        unsent: dict[int, ClaimedDelivery],
        outcomes: Outcomes,
        claimed_at: float,
        build: Callable[[ClaimedDelivery], Outgoing | ChatMessage],
    ) -> Iterator[Outgoing | ChatMessage]:
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
                held = self.claims.renew(list(unsent))
            if row.delivery_id not in held:
                unsent.pop(row.delivery_id, None)  # not ours to send, nor to release
                continue
            try:
                message = build(row)
            except Exception as error:  # one subscriber's message, never the batch
                log.debug("delivery %d not built", row.delivery_id, exc_info=True)
                detail = f"not sent: the message could not be built: {error}"
                unsent.pop(row.delivery_id, None)
                outcomes.add(SendResult(row.delivery_id, False, True, detail), row)
                continue
            yield message

    def _skip_unsubscribed(
        self, rows: list[ClaimedDelivery], report: DeliveryReport, progress: Progress | None
    ) -> list[ClaimedDelivery]:
        """The rows to send; the others (the subscriber left, bounced, paused past the digest's
        day or follows no topic now) are marked skipped, in one statement."""
        issue_date = self.messages.edition.issue_date
        sendable, skipped = [], []
        for row in rows:
            paused = row.paused_until is not None and row.paused_until > issue_date
            active = row.status == SubscriberStatus.active and row.topic_ids and not paused
            (sendable if active else skipped).append(row)
        if skipped:
            with session_scope(self.settings) as session:
                store.skip_deliveries(session, [row.delivery_id for row in skipped], NOT_SUBSCRIBED)
                self.notice.finished(session)
            report.skipped += len(skipped)
            if progress is not None:
                progress(len(skipped))
        return sendable


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
