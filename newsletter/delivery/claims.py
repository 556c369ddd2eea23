"""Claiming delivery rows: due rows taken under a lease, renewed while a batch lasts, handed
back when it ends early, and the rows a dead sender had sent found in the send journal.

A sender *claims* rows atomically (`FOR UPDATE SKIP LOCKED` on PostgreSQL; one UPDATE …
RETURNING on SQLite, whose writers take turns) and holds them under a lease; rows whose lease
expired (their worker died) are claimed again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.events import SentNotice
from newsletter.delivery.journal import SendJournal
from newsletter.delivery.outcomes import DeliveryReport, Progress
from newsletter.models import utcnow
from newsletter.store import ClaimedDelivery

log = logging.getLogger(__name__)


def worker_name() -> str:
    """Who holds a claim: host, process and thread, for `newsletter status` and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Claims:
    """One sender's claims on one digest's delivery rows."""

    def __init__(
        self,
        settings: Settings,
        digest_id: int,
        worker: str,
        journal: Callable[[], SendJournal],
        notice: SentNotice,
    ) -> None:
        self.settings = settings
        self.digest_id = digest_id
        self.worker = worker
        self.journal = journal
        """This sender's journal (made on first use, hence a callable)."""
        self.notice = notice

    def take(
        self,
        limit: int,
        report: DeliveryReport,
        progress: Progress | None,
        prepare: Callable[[Session, list[ClaimedDelivery]], None],
    ) -> list[ClaimedDelivery]:
        """Claim due rows and read what sending them needs: one statement on PostgreSQL, two
        elsewhere (`store.claim_delivery_rows`).

        Before any is sent, the claimed rows are looked up in the send journal: a row found
        there was sent by a sender that died before writing it (its lease ended, so it was due
        again). Those are marked sent in the same unit of work, one UPDATE more after a crash
        only, and others claimed in their place. A dead sender's file journal is marked sent
        whole, its rows this claim did not take in a unit of work of their own.
        """
        lease = timedelta(seconds=self.settings.delivery_lease)
        while True:
            with session_scope(self.settings) as session:
                claimed = store.claim_delivery_rows(
                    session, self.digest_id, self.worker, limit, utcnow(), lease
                )
                ids = [row.delivery_id for row in claimed]
                journaled = self.journal().recorded_among(ids) if ids else {}
                ours = {key: journaled[key] for key in ids if key in journaled}
                recovered = store.finish_sent(session, ours) if ours else 0
                if recovered:
                    self.notice.finished(session)
                rows = [row for row in claimed if row.delivery_id not in ours]
                prepare(session, rows)  # what building their messages needs
            if len(ours) < len(journaled):  # a dead sender's other rows (its whole file)
                others = {key: reply for key, reply in journaled.items() if key not in ours}
                marked = self._mark_others_sent(others)
                if marked is None:
                    journaled = {}  # not in the database: left in the journal for a later claim
                recovered += marked or 0
            if journaled:
                self.journal().folded(journaled)  # only now that the database has them
            if recovered:
                log.info("%d deliveries found sent in the send journal, marked sent", recovered)
                report.recovered += recovered
                if progress is not None:
                    progress(recovered)
            if rows or not ids:
                return rows

    def renew(self, delivery_ids: list[int]) -> set[int]:
        lease_until = utcnow() + timedelta(seconds=self.settings.delivery_lease)
        with session_scope(self.settings) as session:
            return store.renew_claims(session, delivery_ids, self.worker, lease_until)

    def release(self, delivery_ids: list[int]) -> None:
        with session_scope(self.settings) as session:
            store.release_deliveries(session, delivery_ids, self.worker)

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
                marked = store.finish_sent(session, others)
                if marked:
                    self.notice.finished(session)
                return marked
        except Exception as error:
            log.debug("journaled deliveries not marked sent", exc_info=True)
            log.warning(
                "send journal: %d deliveries a gone sender had sent are not marked sent yet"
                " (%s); the claims that take them will",
                len(others),
                error,
            )
            return None
