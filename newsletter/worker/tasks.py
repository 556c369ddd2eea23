"""The Huey instance and its tasks: the daily job on a schedule, or on demand.

Embedded default: Huey on a SQLite file under the var folder, no server needed. With
NEWSLETTER_REDIS_URL set: Huey on Redis, so any number of workers on any number of machines
share the work. The daily job is two tasks, so that a step that fails is retried from where
it failed and arXiv is asked once per job: `daily_job` fetches (one fetch at a time across all
workers: arXiv allows one request every 3 seconds from all your machines together), then
queues `daily_digest`, which builds the digest and fans the delivery out into `deliver` tasks
that claim batches of deliveries (see `delivery`). With NEWSLETTER_INBOX set, `read_inbox`
acts on the mail that came back every few minutes. `post_webhooks` posts the webhook
deliveries those steps (and the web app, and the CLI) wrote: queued after each step that may
have written some, and every minute for retries and the rest.

The worker heals itself (see `consumer` and `outages`): Redis, the database or the SMTP relay
down is waited out with a growing backoff, one log line a step, and the work goes on when the
part is back; what was lost meanwhile (tasks in a Redis that restarted empty, a task whose
worker was killed) is found again by `sweep`.

Tasks take plain values, look everything up themselves, and are safe to run twice.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, date, datetime, timedelta
from functools import partial

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.api import TaskWrapper
from huey.exceptions import CancelExecution, RetryTask, TaskLockedException

from newsletter import metrics, store
from newsletter.config import Settings, get_settings
from newsletter.daily import code_check, fetch, send, serve
from newsletter.db import session_scope
from newsletter.delivery import deliverer as delivery_deliverer
from newsletter.delivery.confirmations import RETRY, ConfirmationJob, send_claimed
from newsletter.delivery.outgoing import Transport
from newsletter.delivery.transports import transport_from_settings
from newsletter.delivery.webhooks import post_due
from newsletter.digest.edition import Edition
from newsletter.digest.segments import Readers
from newsletter.errors import ConfigError
from newsletter.inbound import reader
from newsletter.models import utcnow
from newsletter.worker import heartbeat
from newsletter.worker.consumer import HealingConsumer, PatientStorage
from newsletter.worker.fetchlock import fetch_lock
from newsletter.worker.outages import Stopped, keep_trying

log = logging.getLogger(__name__)

SWEEP_DAYS = 7
"""Digests of the last week are swept; an older one is news no longer (`newsletter send
--date` still finishes it by hand)."""
SWEEP_GRACE = 5.0
"""Seconds, beyond a heartbeat interval, that a digest must be overdue before the periodic
sweep takes it for forgotten: time for a successor task due then to leave the schedule (the
scheduler looks every second), start and show in its worker's next heartbeat."""


TASK_NAMESPACE = "newsletter.tasks"
"""The name every task is queued under, `newsletter.tasks.<function>`, whatever module defines
it: a task queued or scheduled by one version of the code is run by the next (Huey drops a
message whose name it does not know), and two versions share one queue during an upgrade."""


class _NamedTask(TaskWrapper):
    """A Huey task whose queued name is `TASK_NAMESPACE.<function>`, not its module's path."""

    def create_task(self, func, context=False, name=None, **settings):
        task_class = super().create_task(func, context, name, **settings)
        task_class.__module__ = TASK_NAMESPACE
        return task_class


class _Queue:
    """Huey's queue with this project's worker: a consumer that rides out outages (see
    `consumer`), and tasks queued under stable names."""

    def create_consumer(self, **options) -> HealingConsumer:
        return HealingConsumer(self, settings=get_settings(), sweep=sweep, **options)

    def get_task_wrapper_class(self) -> type[TaskWrapper]:
        return _NamedTask


class RedisQueue(_Queue, RedisHuey):
    pass


class SqliteQueue(_Queue, SqliteHuey):
    pass


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url is not None:
        return RedisQueue("newsletter", url=settings.redis_url.get_secret_value())
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return SqliteQueue("newsletter", filename=str(settings.huey_path))


huey = make_huey(get_settings())


@huey.pre_execute()
def _running(task) -> None:
    """What this thread is running, for the worker's heartbeat."""
    digest_id = task.args[0] if task.name == "deliver" and task.args else None
    heartbeat.ACTIVITY.start(f"{task.name}({', '.join(map(repr, task.args))})", digest_id)


@huey.post_execute()
def _finished(task, value, exception) -> None:
    heartbeat.ACTIVITY.end()


# ---------------------------------------------------------------- the daily job


@huey.task(retries=20, retry_delay=30)
def daily_job() -> dict:
    """Fetch the day's papers, then queue `daily_digest` to build and send the digest.

    If another worker is fetching, the fetch lock makes this task fail and Huey retries it.
    A fetch that meets an outage waits for the part to come back (see `outages`).
    """
    settings = get_settings()
    # The day it runs for, read first: a fetch that waits out an outage past midnight still
    # builds that day's digest.
    issue_date = settings.today().isoformat()
    idle = _waiting_out_outages(settings, partial(send.nothing_to_do, settings))
    if idle is not None:  # no empty digest published, no arXiv request for nothing
        log.warning("daily job: nothing to do: %s", idle)
        return {"date": issue_date, "nothing_to_do": idle}
    with fetch_lock(settings):
        fetched = _waiting_out_outages(settings, partial(fetch.fetch, settings))
    for entry in fetched.topics:
        for reason in entry.skipped:
            log.warning("fetch: topic %r: left out %s", entry.topic, reason)
    for error in fetched.errors:
        log.error("fetch: %s", error)
    daily_digest(issue_date)
    return {"date": issue_date, "fetch_errors": len(fetched.errors)}


@huey.task(retries=20, retry_delay=30)
def daily_digest(issue_date: str) -> dict:
    """The daily job's second step: ask for code links, build the day's digest (translations,
    marked ready), then give its readers their delivery rows in shares by subscriber id
    (`serve_part`, NEWSLETTER_SERVE_PART_SIZE readers each): the others queued for any worker,
    the first written here; retried on its own, never refetching.

    Writing the rows is most of the build (a reader moved on and a row written each, on the
    database): shared, every worker writes while the edition's builder writes its own share,
    rather than one writing them all while the others can only send. The shares are safe to
    run at once, and a reader is given a window once whoever serves them (`daily.serve`);
    readers a share left (its worker killed) are due still, and the quarter hour's
    `serve_readers` gives them their rows.

    A setting that makes the digest impossible (no NEWSLETTER_SECRET_KEY in production) stops
    it at once: this process's settings will not change by waiting, so retrying is pointless.
    """
    settings = get_settings()
    day = date.fromisoformat(issue_date)
    try:
        _waiting_out_outages(settings, partial(code_check.check_code_links, settings))
        with huey.lock_task(SERVE_LOCK):  # not while the minute's serving runs
            edition, _translation, readers = _waiting_out_outages(
                settings, partial(send.build_daily, settings, day)
            )
        settings.secret()  # what every row needs: unreadable, no share is queued
    except ConfigError as error:
        log.error("daily job: the digest of %s cannot be built: %s", issue_date, error)
        raise CancelExecution(str(error), retry=False) from error
    except TaskLockedException as locked:  # the minute's serving: done in a moment
        raise RetryTask("readers are being served", delay=5) from locked
    _queue_webhooks(settings)  # digest.built
    parts = _waiting_out_outages(settings, partial(_reader_parts, settings))
    for first, last in parts[1:]:
        serve_part(issue_date, first, last)
    # This share also queues delivery for rows of the digest written before (a retried step).
    # It gives its readers the edition just built, as they were streamed for it: neither is
    # read again (`newsletter run` serves the same way, `send.build_edition`).
    mine = _serve_share(settings, issue_date, parts[0], built=(edition, readers))
    summary = {"date": issue_date, "digest_id": edition.digest_id, "parts": len(parts),
               "rows": mine["rows"], "batches": mine["batches"]}  # fmt: skip
    log.info("daily job queued its delivery: %s", summary)
    return summary


def _reader_parts(settings: Settings) -> list[tuple[int, int]]:
    with session_scope(settings) as session:
        return store.reader_id_parts(session, settings.serve_part_size)


@huey.task(retries=20, retry_delay=30)
def serve_part(issue_date: str, first_id: int, last_id: int) -> dict:
    """A share of the daily job's serving: the readers due now whose ids are between
    `first_id` and `last_id` given their delivery rows, a `deliver` task queued for each
    batch of them as they are committed (see `daily_digest`); retried on its own."""
    return _serve_share(get_settings(), issue_date, (first_id, last_id))


def _serve_share(
    settings: Settings,
    issue_date: str,
    among: tuple[int, int],
    built: tuple[Edition, Readers] | None = None,
) -> dict:
    """Serve the due readers whose ids are `among` (first, last); `built`: the edition the
    daily job built in this process and its readers as streamed then (the builder's share)."""
    written = QueuedAsWritten(settings)
    serving = partial(serve.serve_due, settings, on=date.fromisoformat(issue_date),
                      on_rows=written, among=among)  # fmt: skip
    built_id = None
    if built is not None:
        edition, readers = built
        built_id = edition.digest_id
        serving = partial(serving, editions={built_id: edition}, streamed=readers)
    served = _waiting_out_outages(settings, serving)
    batches = _queue_served(settings, served.to_deliver(built_id), written)
    summary = {"readers": list(among), "rows": served.rows, "batches": batches}
    log.info("serve part of %s: %s", issue_date, summary)
    return summary


def _waiting_out_outages(settings: Settings, step):
    """A daily step's result, outages waited out; stopped meanwhile, it is queued again."""
    try:
        return keep_trying(settings, step)
    except Stopped as stopped:
        raise RetryTask(str(stopped), delay=settings.recovery_interval) from stopped


class QueuedAsWritten:
    """Told of delivery rows as a serving commits them (`serve.RowsWritten`), queues a
    `deliver` task for each NEWSLETTER_SEND_BATCH_SIZE of them at once: every worker sends
    while the worker serving writes the rest, rather than waiting for the last row."""

    def __init__(self, settings: Settings) -> None:
        self.batch = max(settings.send_batch_size, 1)
        self.unqueued: dict[int, int] = {}
        """Rows written and not covered by a task yet, by digest."""
        self.tasks: dict[int, int] = {}
        """Tasks queued, by digest."""

    def __call__(self, digest_id: int, rows: int) -> None:
        self.unqueued[digest_id] = self.unqueued.get(digest_id, 0) + rows
        # Known from its first rows on: its tail gets one task, not a task for every batch
        # of the digest unfinished then (other shares' rows, which have tasks of their own).
        self.tasks.setdefault(digest_id, 0)
        while self.unqueued[digest_id] >= self.batch:
            deliver(digest_id)
            self.unqueued[digest_id] -= self.batch
            self.tasks[digest_id] += 1


def _queue_served(settings: Settings, digest_ids: list[int], written: QueuedAsWritten) -> int:
    """Delivery queued for each of these digests (the day's, the spans readers were given);
    for a digest whose rows had tasks queued as they were written, one more task for the
    last rows. The number of tasks queued in all."""
    done = written.tasks
    queued = 0
    for digest_id in dict.fromkeys([*digest_ids, *done]):  # a serving retried: its rows too
        if digest_id in done:
            deliver(digest_id)  # the rows after the last whole batch (or none: it ends at once)
            queued += done[digest_id] + 1
        else:
            queued += _waiting_out_outages(settings, partial(queue_delivery, settings, digest_id))
    return queued


SERVE_LOCK = "serve-readers"
"""Held while due readers are given their windows: one serving at a time across workers."""
_SERVED_EDITIONS: dict = {}
"""The editions this process's servings read (a span's papers read once a day, not each quarter
hour); used under SERVE_LOCK only."""


@huey.periodic_task(crontab(minute="*/15"))
def serve_readers() -> dict:
    """Every quarter hour (every UTC offset in use is a whole quarter hour, so each local hour
    falls on one): give the readers whose hour has come their digest, and queue its delivery
    (see `daily.serve`). Another serving still running (a span being translated) makes this
    one a no-op: the next quarter serves whoever is due by then."""
    settings = get_settings()
    written = QueuedAsWritten(settings)
    try:
        with huey.lock_task(SERVE_LOCK):
            served = _waiting_out_outages(
                settings,
                partial(serve.serve_due, settings, editions=_SERVED_EDITIONS, on_rows=written),
            )
    except TaskLockedException:
        return {"skipped": "another serving is running"}
    batches = _queue_served(settings, served.to_deliver(), written)
    if served.spans:
        _queue_webhooks(settings)  # a span's digest.built
    return {"due": served.due, "rows": served.rows, "batches": batches}


def queue_delivery(settings: Settings, digest_id: int) -> int:
    """Enough `deliver` tasks for the digest's unfinished deliveries, one per batch (the count
    read once the database answers; `Stopped` if the worker stops meanwhile)."""
    remaining, _next = keep_trying(
        settings, partial(delivery_deliverer.unfinished, settings, digest_id)
    )
    batches = max(1, math.ceil(remaining / max(settings.send_batch_size, 1)))
    for _ in range(batches):
        deliver(digest_id)
    return batches


# ---------------------------------------------------------------- delivery

_local = threading.local()


def _transport(settings: Settings) -> Transport:
    """One long-lived transport (one SMTP connection) per worker thread; it reconnects itself."""
    if getattr(_local, "transport", None) is None:
        _local.transport = metrics.measured(transport_from_settings(settings))
    return _local.transport


def _deliverer(settings: Settings, digest_id: int) -> delivery_deliverer.Deliverer:
    """A worker thread keeps the digest's segments and rendered bodies between batches."""
    cached = getattr(_local, "deliverer", None)
    if cached is None or cached.digest_id != digest_id:
        if cached is not None:
            cached.close()  # its journal's file, before it is forgotten
        cached = _local.deliverer = delivery_deliverer.Deliverer(
            settings, digest_id, _transport(settings)
        )
    return cached


@huey.task()
def deliver(digest_id: int) -> dict:
    """Send batches of a digest's due deliveries until none is due; come back for the rest.

    Rows other workers hold are left to them. When the SMTP relay, the database or Redis is
    down, this task waits for it (see `outages`): the batch it had claimed is handed back (or,
    with the database away, left to its lease), and no row counts as failed because a part was
    down. Rows that come due later (a retry's backoff, a dead worker's lease) get a successor
    scheduled for that moment; what a task lost with its worker or its queue leaves undone,
    `sweep` finds.
    """
    settings = get_settings()
    deliverer = _deliverer(settings, digest_id)
    report = delivery_deliverer.DeliveryReport()
    try:
        batch = partial(deliverer.deliver_batch, settings.send_batch_size)
        delivery_deliverer.until_none_due(partial(keep_trying, settings, batch), report)
        remaining, next_due = keep_trying(
            settings, partial(delivery_deliverer.unfinished, settings, digest_id)
        )
        if remaining and next_due is not None:
            delay = max(0.0, (next_due - utcnow()).total_seconds()) + 0.5
            deliver.schedule((digest_id,), delay=delay)
    except Stopped as stopped:
        # The rows not sent are back in the table: the next worker's first sweep finds them.
        log.warning("deliver digest %d: %s; left to the next worker", digest_id, stopped)
        remaining = None
    for failure in report.failures:
        log.error("send: %s", failure)
    if remaining == 0:
        _queue_webhooks(settings)  # digest.sent, if this task finished the digest
    metrics.record_delivery_report(report)
    summary = {"digest_id": digest_id, "sent": report.sent, "failed": report.failed,
               "deferred": report.deferred, "remaining": remaining}  # fmt: skip
    if report.recovered:
        summary["recovered"] = report.recovered
    if report.sent + report.failed + report.deferred + report.skipped:
        log.info("deliver digest %d: %s", digest_id, summary)
    return summary


def sweep(settings: Settings | None = None, *, periodic: bool = False) -> list[int]:
    """Queue delivery for each recent digest whose deliveries are due and that no live worker
    is delivering; the digests queued.

    This is what makes the system converge whatever was lost: tasks enqueued in a Redis that
    went away, a task whose worker was killed (its rows come due when their lease ends), rows
    a task left when its worker stopped mid-outage. Safe at any time: a `deliver` task that
    finds nothing to claim ends at once.

    The sweep a worker makes when it starts also schedules a task for rows coming due before
    the next sweep (a lone worker started again has no other sweep to wait for: the rows its
    killed self held come due when their lease ends). The sweeps of the worker that runs the
    schedule (`periodic`) take only digests overdue by SWEEP_GRACE and a heartbeat interval:
    until then, the successor the last `deliver` task scheduled for that moment may be on its
    way and not yet in any heartbeat, and a second set of tasks would only find nothing to do.
    """
    settings = settings or get_settings()
    if huey.pending_count():
        # The workers have a backlog (maybe the very tasks this would add): whatever was lost
        # is looked for once they are through it, rather than piling up tasks behind it.
        return []
    _doing, here = heartbeat.ACTIVITY.now()
    busy = set(here).union(*(beat.delivering for beat in heartbeat.live_workers(settings)))
    now = utcnow()
    if periodic:
        latest = now - timedelta(seconds=SWEEP_GRACE + settings.heartbeat_interval)
    else:
        latest = now + timedelta(seconds=settings.recovery_interval)
    queued = []
    for digest_id, next_due in _unfinished_digests(settings, now):
        if digest_id in busy or next_due > latest:
            continue
        wait = (next_due - now).total_seconds()
        if wait <= 0:
            batches = queue_delivery(settings, digest_id)
            log.info("sweep: digest %d has deliveries due and no worker on it:"
                     " %d deliver task(s) queued", digest_id, batches)  # fmt: skip
        else:
            deliver.schedule((digest_id,), delay=wait + 0.5)
            log.info("sweep: digest %d has deliveries coming due in %.0f s and no worker on"
                     " it: a deliver task scheduled then", digest_id, wait)  # fmt: skip
        queued.append(digest_id)
    return queued


def _unfinished_digests(settings: Settings, now: datetime) -> list[tuple[int, datetime]]:
    """(digest, when its next delivery can be sent) for the last SWEEP_DAYS' unfinished ones."""
    since = now.date() - timedelta(days=SWEEP_DAYS)
    with session_scope(settings) as session:
        recent = store.digest_ids_since(session, since)
        due = [(digest_id, store.next_due_at(session, digest_id)) for digest_id in recent]
    return [(digest_id, next_due) for digest_id, next_due in due if next_due is not None]


# ---------------------------------------------------------------- the schedule


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
    report = reader.read_inbox(settings, settings.inbox)
    for line in report.lines:  # what is new: an unreadable message is logged once, not each read
        log.info("inbox: %s", line)
    if report.acted_on or report.lines:
        log.info("inbox %s: %s", settings.inbox, report.summary())
    if report.acted_on:
        _queue_webhooks(settings)  # subscriber.bounced, subscriber.unsubscribed
    return {"acted_on": report.acted_on, "read_before": report.read_before}


# ---------------------------------------------------------------- the opt-in's confirmation

CONFIRMATION_TRIES = 4
"""Tries of a confirmation the mail server could not take for now (4xx, no connection), a
minute apart; the address's claim is kept meanwhile, so asking again sends no second one."""


@huey.task(retries=CONFIRMATION_TRIES - 1, retry_delay=60, context=True)
def send_confirmation(job: dict, task=None) -> str:
    """Send the confirmation email a web request to subscribe claimed (see
    `delivery.confirmations`); safe to run twice: a claim already sent or replaced sends
    nothing."""
    last_try = task is None or not task.retries
    outcome = send_claimed(get_settings(), ConfirmationJob.from_dict(job), last_try=last_try)
    if outcome == RETRY:
        raise RetryTask("the mail server could not take the confirmation now")
    return outcome


# ---------------------------------------------------------------- webhooks

WEBHOOK_ROUND = 50.0
"""Seconds one `post_webhooks` task posts at most (each attempt within
NEWSLETTER_WEBHOOK_TIMEOUT): the next minute's task goes on with what is left."""


@huey.periodic_task(crontab(minute="*"))
def post_webhooks() -> dict:
    """Post the webhook deliveries that are due (see `delivery.webhooks`): queued after the
    steps that write events, and every minute for retries and the events the web app and the
    CLI wrote. Each row is claimed before it is posted, so tasks on several workers never post
    the same row; a database outage is waited out."""
    settings = get_settings()
    try:
        report = keep_trying(settings, partial(post_due, settings, WEBHOOK_ROUND))
    except Stopped as stopped:
        log.warning("webhooks: %s; left to the next worker", stopped)
        return {"stopped": str(stopped)}
    for error in report.errors:
        log.error("webhooks: %s", error)
    if report.posted_any:
        log.info("%s", report.summary())
    return {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}


def _queue_webhooks(settings: Settings) -> None:
    """Queue `post_webhooks` now when a webhook delivery is due (one look at the table), so
    that an event does not wait for the next minute."""
    try:
        with session_scope(settings) as session:
            due = store.has_due_webhooks(session, utcnow())
        if due:
            post_webhooks()
    except Exception:  # the minute's task will find them: never fail the step that made them
        log.warning("webhooks: not queued now; the next minute's task posts them", exc_info=True)


# ---------------------------------------------------------------- watching


def queue_depth() -> dict[str, int]:
    """Tasks waiting to run now, and scheduled for later (retries, successors); raises what the
    queue's storage raised when it does not answer.

    Read for display (`/metrics`, `newsletter status`): from the queue's own storage, never the
    worker's `PatientStorage`, which would wait for Redis to come back and hang the page.
    """
    storage = huey.storage
    if isinstance(storage, PatientStorage):
        storage = storage.storage
    return {"pending": storage.queue_size(), "scheduled": storage.schedule_size()}
