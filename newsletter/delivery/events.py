"""A digest's webhook events, written in the transaction that makes them (see `store.webhooks`):
`digest.built` in the one that marks it ready, `digest.sent` in the one that finishes its last
unfinished delivery.

A digest is "sent" each time its deliveries are all finished (sent, failed or skipped): a
daily digest whose readers are served at several hours is sent once per hour that gives it
new rows, each time with the totals so far. Transactions that finish rows take turns on the
digest's row (`store.lock_digest`) before counting, so exactly one of them sees the last row
finished; nothing is locked or counted while no webhook asked for the event.
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from newsletter import store
from newsletter.digest.content import digest_web_url
from newsletter.models import Digest

BUILT, SENT = "digest.built", "digest.sent"


def digest_data(session: Session, base_url: str, digest: Digest) -> dict:
    """What a digest event tells about the digest: which one, where it is, how many papers."""
    return {
        "digest": {
            "id": digest.id,
            "kind": str(digest.kind),
            "date": digest.issue_date.isoformat(),
            "path": digest.path,
            "url": digest_web_url(base_url, digest.path),
            "window_start": digest.window_start.isoformat() if digest.window_start else None,
            "window_end": digest.window_end.isoformat(),
        },
        "papers": store.count_papers_between(session, digest.window_start, digest.window_end),
    }


def mark_built(session: Session, base_url: str, digest_id: int, at) -> None:
    """Mark the digest ready; the first time, tell the webhooks that asked for `digest.built`."""
    if not store.mark_ready(session, digest_id, at):
        return
    webhooks = store.listeners(session, BUILT)
    if webhooks:
        digest = store.digest_by_id(session, digest_id)
        store.queue_event(session, BUILT, digest_data(session, base_url, digest), webhooks)


RECHECK = 60.0
"""Seconds a sender goes on believing that no webhook asked for `digest.sent`: a send costs no
statement more per group of rows finished while none did (a webhook added meanwhile is told
of the digests finished from then on)."""


class SentNotice:
    """One sender's `digest.sent` duty for one digest: `finished(session)` in each transaction
    that finishes some of its deliveries."""

    def __init__(self, base_url: str, digest_id: int) -> None:
        self.base_url = base_url
        self.digest_id = digest_id
        self._quiet_until = 0.0

    def finished(self, session: Session) -> None:
        """When none of the digest's deliveries is left unfinished, tell the webhooks that
        asked for `digest.sent`, with the counts."""
        if time.monotonic() < self._quiet_until:
            return
        webhooks = store.listeners(session, SENT)
        if not webhooks:
            self._quiet_until = time.monotonic() + RECHECK
            return
        note_finished(session, self.base_url, self.digest_id, webhooks)


def note_finished(session: Session, base_url: str, digest_id: int, webhooks: list) -> None:
    """Tell these webhooks that the digest is sent, if none of its deliveries is unfinished
    now that this transaction's are (taking turns on the digest's row first)."""
    store.lock_digest(session, digest_id)
    if store.count_unfinished(session, digest_id):
        return
    digest = store.digest_by_id(session, digest_id)
    data = digest_data(session, base_url, digest)
    counts = store.delivery_counts(session, digest_id)
    data["deliveries"] = {name: counts.get(name, 0) for name in ("sent", "failed", "skipped")}
    store.queue_event(session, SENT, data, webhooks)
