"""The Huey instance and its tasks: the daily job on a schedule, or on demand.

Embedded default: Huey on a SQLite file under the var folder, no server needed. With
NEWSLETTER_REDIS_URL set: Huey on Redis, so any number of workers on any number of machines
share the work. The daily job fetches (one fetch at a time across all workers: arXiv allows
one request every 3 seconds from all your machines together), builds the digest, then fans
the delivery out into `deliver` tasks that claim batches of deliveries (see `delivery`).
With NEWSLETTER_INBOX set, `read_inbox` acts on the mail that came back every few minutes.
Tasks take plain values, look everything up themselves, and are safe to run twice.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime

from huey import Huey, RedisHuey, SqliteHuey

from newsletter import delivery, inbox, jobs
from newsletter.config import Settings, get_settings
from newsletter.mail import Transport, transport_from_settings
from newsletter.models import utcnow

log = logging.getLogger(__name__)

FETCH_LOCK = "arxiv-fetch"


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url is not None:
        return RedisHuey("newsletter", url=settings.redis_url.get_secret_value())
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("newsletter", filename=str(settings.huey_path))


huey = make_huey(get_settings())


@huey.task(retries=20, retry_delay=30)
def daily_job() -> dict:
    """Fetch, build today's digest, and queue its delivery; returns a short summary.

    If another worker is fetching, the fetch lock makes this task fail and Huey retries it.
    """
    settings = get_settings()
    with huey.lock_task(FETCH_LOCK):
        fetched = jobs.fetch(settings)
    for entry in fetched.topics:
        for reason in entry.skipped:
            log.warning("fetch: topic %r: left out %s", entry.topic, reason)
    for error in fetched.errors:
        log.error("fetch: %s", error)
    jobs.check_code_links(settings)
    issue_date = jobs.today(settings)
    digest_id, _translation = jobs.build(settings, issue_date)
    batches = queue_delivery(settings, digest_id)
    summary = {
        "date": issue_date.isoformat(),
        "fetch_errors": len(fetched.errors),
        "digest_id": digest_id,
        "batches": batches,
    }
    log.info("daily job queued its delivery: %s", summary)
    return summary


def queue_delivery(settings: Settings, digest_id: int) -> int:
    """Enough `deliver` tasks for the digest's unfinished deliveries, one per batch."""
    remaining, _next = delivery.unfinished(settings, digest_id)
    batches = max(1, math.ceil(remaining / max(settings.send_batch_size, 1)))
    for _ in range(batches):
        deliver(digest_id)
    return batches


_local = threading.local()


def _transport(settings: Settings) -> Transport:
    """One long-lived transport (one SMTP connection) per worker thread; it reconnects itself."""
    if getattr(_local, "transport", None) is None:
        _local.transport = transport_from_settings(settings)
    return _local.transport


def _deliverer(settings: Settings, digest_id: int) -> delivery.Deliverer:
    """A worker thread keeps the digest's segments and rendered bodies between batches."""
    cached = getattr(_local, "deliverer", None)
    if cached is None or cached.digest_id != digest_id:
        cached = _local.deliverer = delivery.Deliverer(settings, digest_id, _transport(settings))
    return cached


@huey.task()
def deliver(digest_id: int) -> dict:
    """Send batches of a digest's due deliveries until none is due; come back for the rest.

    Rows other workers hold are left to them; if one of them dies, its rows come due when
    their lease ends, and this task, rescheduled for that moment, takes them over.

    Huey forgets a task whose worker dies (SIGKILL, out of memory, a machine lost), and with
    it the rescheduling it would have done: so each run first schedules its own take-over for
    when its claims would lapse, and replaces it with the successor the digest needs when it
    ends normally. A run that outlasts its take-over leaves the rest to it.
    """
    settings = get_settings()
    takeover_delay = settings.delivery_lease + 1.0
    takeover_at = time.monotonic() + takeover_delay
    takeover = deliver.schedule((digest_id,), delay=takeover_delay)
    deliverer = _deliverer(settings, digest_id)
    report = delivery.DeliveryReport()
    while True:
        batch = deliverer.deliver_batch(settings.send_batch_size)
        report.add(batch)
        if not (batch.sent + batch.failed + batch.deferred + batch.skipped):
            break
    remaining, next_due = delivery.unfinished(settings, digest_id)
    if time.monotonic() < takeover_at:  # not started yet: replace it by what is needed
        takeover.revoke()
        if remaining and next_due is not None:
            delay = max(0.0, (next_due - utcnow()).total_seconds()) + 0.5
            deliver.schedule((digest_id,), delay=delay)
    for failure in report.failures:
        log.error("send: %s", failure)
    return {"digest_id": digest_id, "sent": report.sent, "failed": report.failed,
            "deferred": report.deferred, "remaining": remaining}  # fmt: skip


def is_daily_time(moment: datetime) -> bool:
    """Whether `moment` (naive UTC, as Huey's scheduler passes it) is the daily job's minute.

    NEWSLETTER_DAILY_TIME is read in NEWSLETTER_TIMEZONE, on NEWSLETTER_SEND_DAYS only (by
    default not on Saturday and Sunday, when arXiv announces nothing). The settings are read
    when the scheduler asks, not at import, so the schedule follows the running process.
    """
    settings = get_settings()
    local = moment.replace(tzinfo=UTC).astimezone(settings.zone)
    return local.strftime("%H:%M") == settings.daily_time and local.weekday() in settings.weekdays


@huey.periodic_task(is_daily_time)
def scheduled_daily_job() -> None:
    """The daily job at NEWSLETTER_DAILY_TIME on NEWSLETTER_SEND_DAYS, run by the scheduler."""
    daily_job()


def is_inbox_time(moment: datetime) -> bool:
    """Whether NEWSLETTER_INBOX is set and `moment` (naive UTC) is one of its reading minutes:
    every NEWSLETTER_INBOX_INTERVAL minutes of the day."""
    settings = get_settings()
    return (
        settings.inbox is not None
        and (moment.hour * 60 + moment.minute) % settings.inbox_interval == 0
    )


@huey.periodic_task(is_inbox_time)
def read_inbox() -> dict:
    """Act on the bounce reports and unsubscribe requests that came to NEWSLETTER_INBOX since
    the last read (a mailbox not there yet holds no mail)."""
    settings = get_settings()
    if settings.inbox is None or not settings.inbox.exists():
        return {"acted_on": 0, "read_before": 0}
    report = inbox.read_inbox(settings, settings.inbox)
    for line in report.lines:  # what is new: an unreadable message is logged once, not each read
        log.info("inbox: %s", line)
    if report.acted_on or report.lines:
        log.info("inbox %s: %s", settings.inbox, report.summary())
    return {"acted_on": report.acted_on, "read_before": report.read_before}


def queue_depth() -> dict[str, int]:
    """Tasks waiting to run now, and scheduled for later (retries, lease take-overs)."""
    return {"pending": huey.pending_count(), "scheduled": huey.scheduled_count()}
