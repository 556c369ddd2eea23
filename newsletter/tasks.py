"""The Huey instance and its tasks: the daily job on a schedule, or on demand.

Embedded default: Huey on a SQLite file under the var folder, no server needed. With
NEWSLETTER_REDIS_URL set: Huey on Redis, so workers on several machines share the queue.
Tasks take plain values, look everything up themselves, and are safe to run twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from huey import Huey, RedisHuey, SqliteHuey

from newsletter import jobs
from newsletter.config import Settings, get_settings

log = logging.getLogger(__name__)


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url is not None:
        return RedisHuey("newsletter", url=settings.redis_url.get_secret_value())
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("newsletter", filename=str(settings.huey_path))


huey = make_huey(get_settings())


@huey.task()
def daily_job() -> dict:
    """Fetch, build and send today's digest; returns a short summary."""
    report = jobs.run_daily(get_settings())
    for error in report.fetch.errors:
        log.error("fetch: %s", error)
    for failure in report.send.failures:
        log.error("send: %s", failure)
    summary = {
        "date": report.send.issue_date.isoformat(),
        "fetch_errors": len(report.fetch.errors),
        "sent": report.send.sent,
        "failed": report.send.failed,
        "deferred": report.send.deferred,
    }
    log.info("daily job done: %s", summary)
    return summary


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
    daily_job.call_local()
