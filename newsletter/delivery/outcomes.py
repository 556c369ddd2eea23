"""A sender's outcomes: each message's result written where it belongs, and what they add up to
(`DeliveryReport`).

A failure is written at once (it may bounce the subscriber, and it is rare); a success is noted
in the send journal at once and written to the database in groups, one UPDATE a group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.bounces import apply_bounce, bounce_from_reply
from newsletter.delivery.events import SentNotice
from newsletter.delivery.journal import SendJournal
from newsletter.delivery.outgoing import SendResult
from newsletter.models import DeliveryStatus, utcnow
from newsletter.store import ClaimedDelivery

Progress = Callable[[int], None]
"""Told how many more deliveries are done (a progress bar's advance)."""


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


class Outcomes:
    """A sender's outcomes: failures written at once, each success noted in the send journal
    at once and written to the database in groups.

    A group is written when it holds NEWSLETTER_RECORD_EVERY messages, or when its first is
    NEWSLETTER_RECORD_INTERVAL seconds old (checked as results come and before each message
    goes, so a slow relay still records promptly), or when the batch ends however it ends. A
    group whose write failed (the database was down) is kept, as its journal entries are, and
    written before the sender claims again: the journal and the group always agree.
    """

    def __init__(
        self, settings: Settings, journal: Callable[[], SendJournal], notice: SentNotice
    ) -> None:
        self.settings = settings
        self.notice = notice
        self.journal = journal
        """This sender's journal (made on first use, hence a callable)."""
        self.report = DeliveryReport()
        self.progress: Progress | None = None
        self.every = settings.record_every
        self.interval = settings.record_interval
        self.sent: dict[int, str] = {}
        self.since = 0.0

    def start(self, report: DeliveryReport, progress: Progress | None) -> Outcomes:
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
            self.journal().record(result.key, result.detail)
            if len(self.sent) >= self.every:
                self.write()
            else:
                self.write_when_due()
        else:
            self._failed(result, row)
        if self.progress is not None:
            self.progress(1)

    def write_when_due(self) -> None:
        if self.sent and time.monotonic() - self.since >= self.interval:
            self.write()

    def write(self) -> None:
        """Mark the messages sent since the last write, in one UPDATE."""
        if not self.sent:
            return
        with session_scope(self.settings) as session:
            marked = store.finish_sent(session, self.sent)
            if marked:
                self.notice.finished(session)
        self.journal().written(self.sent)
        # A row another sender found in the journal and marked meanwhile (this one's lease
        # had ended) is counted there, as recovered, not here again.
        self.report.sent += marked
        self.sent = {}

    def _failed(self, result: SendResult, row: ClaimedDelivery) -> None:
        """Write a failure at once: it may bounce the subscriber, and it is rare."""
        with session_scope(self.settings) as session:
            delivery = store.delivery_by_id(session, result.key)
            attempts = delivery.attempts + 1
            if result.permanent or attempts >= self.settings.smtp_max_attempts:
                store.finish_delivery(session, result.key, DeliveryStatus.failed, result.detail)
                self.notice.finished(session)
                self.report.failed += 1
                self.report.failures.append(f"{row.email}: {result.detail}")
                if result.permanent and self._bounce(session, row, result.detail) == "bounced":
                    self.report.bounced += 1
                return
            wait = self.settings.smtp_retry_backoff * 2 ** (attempts - 1)
            wait = max(wait, result.retry_after or 0.0)
            store.defer_delivery(
                session, result.key, result.detail, utcnow() + timedelta(seconds=wait)
            )
            self.report.deferred += 1

    def _bounce(self, session, row: ClaimedDelivery, detail: str) -> str:
        """Count a server's 5xx reply against the address; a failure of ours (a message that
        could not be built, a relay without SMTPUTF8) has no reply code and is no bounce, nor
        is a chat channel's refusal (a channel has no address)."""
        if row.channel is not None or not detail[:3].isdigit():
            return "ignored"
        bounce = bounce_from_reply(row.email, int(detail[:3]), detail[4:])
        return apply_bounce(session, bounce)
