"""What `newsletter status` and the API's `GET /api/v1/job` show about the daily job: the queue,
the live workers, the next sends, and the latest digest's deliveries. Gathered once here,
shown by each door in its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from newsletter import store
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import Digest
from newsletter.worker import heartbeat
from newsletter.worker.outages import outage_of

NEXT_SLOTS = 12
"""Upcoming send times `status` lists."""


@dataclass
class JobReport:
    queue_ok: bool
    queue_problem: str | None = None
    """Why the queue cannot be seen (Redis down), in words."""
    depth: dict[str, int] = field(default_factory=dict)
    workers: list[heartbeat.Beat] = field(default_factory=list)
    slots: list[store.Slot] = field(default_factory=list)
    digest: Digest | None = None
    counts: dict[str, int] = field(default_factory=dict)
    in_flight: list[tuple[str, int, datetime]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    next_due: datetime | None = None
    webhooks: list[store.WebhookCounts] = field(default_factory=list)
    """Each webhook's deliveries: pending, sent, failed, its last error."""

    @property
    def idle_warning(self) -> str | None:
        return heartbeat.idle_queue_warning(self.depth.get("pending", 0), self.workers)


def job_report(settings: Settings, failures: int = 20) -> JobReport:
    """The daily job as it stands; the queue's failure (Redis down) is part of the report,
    never raised."""
    report = _queue_and_workers(settings)
    with session_scope(settings) as session:
        report.slots = store.upcoming_slots(session, NEXT_SLOTS)
        report.webhooks = store.webhook_counts(session)
        report.digest = next(iter(store.list_digests(session)), None)
        if report.digest is not None:
            digest_id = report.digest.id
            report.counts = store.delivery_counts(session, digest_id)
            report.in_flight = store.claims_in_flight(session, digest_id)
            report.failed = store.failed_deliveries(session, digest_id, failures)
            report.next_due = store.next_due_at(session, digest_id)
            session.expunge(report.digest)
    return report


def _queue_and_workers(settings: Settings) -> JobReport:
    from newsletter.worker.tasks import queue_depth

    try:
        depth = queue_depth()
        workers = heartbeat.live_workers(settings)
    except Exception as error:
        outage = outage_of(error, settings)
        if outage is None:
            raise
        return JobReport(queue_ok=False, queue_problem=outage.line())
    return JobReport(queue_ok=True, depth=depth, workers=workers)
