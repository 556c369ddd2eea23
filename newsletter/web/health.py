"""Is the service up, is it ready, what has it done: `/healthz`, `/readyz` and `/metrics`.

`/healthz` says the process answers, and nothing else: no database, no Redis, so that a
liveness probe never restarts the web app because the database is down (a restart would not
bring it back). `/readyz` asks each thing the service needs, each within a few seconds: the
database, Redis when the queue is there, the schema, and whether the daily job delivered what
the schedule promises. 503 when any fails. Who asks from this machine or with the admin token
also reads why (an error may name a host); anyone else reads which check failed. `/metrics`
is Prometheus' page, open like the admin pages (see `admin.authorised`).

None of the three is cached by anyone: an answer is about now.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as CheckTimeout
from datetime import UTC, date, datetime, timedelta

import redis
from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session

from newsletter import metrics, store
from newsletter.config import Settings
from newsletter.db import engine_for, schema_is_current, session_scope
from newsletter.errors import ConfigError
from newsletter.logs import mask_secrets, secret_values
from newsletter.models import Digest, utcnow
from newsletter.web.admin import admins_only, authorised
from newsletter.web.common import settings

blueprint = Blueprint("health", __name__)

CHECK_TIMEOUT = 3.0
"""Seconds one readiness check may take: a database that answers slower is not ready, and a
probe must answer well before its own timeout (Kubernetes' default is 1 s, most allow more)."""
DIGESTS_LOOKED_AT = 7
"""The newest digests in which the last finished one is looked for."""
PUBLIC_FIELDS = {"ok", "state", "backend", "last_success", "due", "age_hours", "ms"}
"""What anyone may read of a check; the error texts are for the operator."""

_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
"""Checks run here, so that one that hangs (a firewall that drops packets) is given up on
after CHECK_TIMEOUT while its thread finishes in its own time."""


@blueprint.after_request
def never_cached(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/healthz")
def liveness():
    return {"status": "ok"}


@blueprint.get("/readyz")
def readiness():
    config = settings()
    checks = readiness_checks(config)
    ready = all(check["ok"] for check in checks.values())
    if not authorised(config):
        checks = {
            name: {key: value for key, value in check.items() if key in PUBLIC_FIELDS}
            for name, check in checks.items()
        }
    return {"status": "ok" if ready else "fail", "checks": checks}, 200 if ready else 503


@blueprint.get("/metrics")
def metrics_page():
    refused = admins_only()
    if refused is not None:
        return refused
    body = generate_latest(metrics.exposition_registry())
    return Response(body, content_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------- the checks


def readiness_checks(config: Settings) -> dict[str, dict]:
    """Each check's result, {"ok": bool, …}; the checks that need the database are not run
    when it does not answer."""
    checks = {"database": _run(check_database, config)}
    if config.redis_url is not None:
        checks["redis"] = _run(check_redis, config)
    if checks["database"]["ok"]:
        checks["schema"] = _run(check_schema, config)
        if checks["schema"]["ok"]:
            checks["daily_job"] = _run(check_daily_job, config)
        else:  # its queries are this version's: they would fail on an older schema
            checks["daily_job"] = {"ok": False, "state": "not checked: the schema is out of date"}
    else:
        for name in ("schema", "daily_job"):
            checks[name] = {"ok": False, "state": "not checked: the database does not answer"}
    return checks


def _run(check: Callable[[Settings], dict], config: Settings) -> dict:
    started = time.monotonic()
    # The request's context (its database lock wait) goes along into the check's thread.
    future = _checks.submit(contextvars.copy_context().run, check, config)
    try:
        result = future.result(timeout=CHECK_TIMEOUT)
    except CheckTimeout:
        result = {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g} s"}
    except Exception as error:  # any failure is an answer, never a 500 with a traceback
        result = {"ok": False, "error": _describe(error, config)}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _describe(error: Exception, config: Settings) -> str:
    """The error's kind and first line (SQLAlchemy adds a second: a link), secrets masked."""
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    return mask_secrets(f"{type(error).__name__}: {first_line}", secret_values(config))


def check_database(config: Settings) -> dict:
    engine = engine_for(config.database_url)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return {"ok": True, "backend": engine.dialect.name}


def check_redis(config: Settings) -> dict:
    client = redis.Redis.from_url(
        config.redis_url.get_secret_value(),
        socket_connect_timeout=CHECK_TIMEOUT,
        socket_timeout=CHECK_TIMEOUT,
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def check_schema(config: Settings) -> dict:
    if schema_is_current(config):
        return {"ok": True, "state": "current"}
    return {"ok": False, "state": "out of date: run `newsletter db upgrade`"}


def check_daily_job(config: Settings, now: datetime | None = None) -> dict:
    """Whether the newest finished digest is as recent as the schedule promises.

    A digest is finished when none of its deliveries is pending or being sent (sent, failed
    or skipped, each is an outcome). The schedule promises, by now, the digest of the latest
    send day whose NEWSLETTER_DAILY_TIME is NEWSLETTER_DAILY_GRACE_HOURS past; "stale" when
    the newest finished digest is older. Before the first digest there is nothing to judge.

    Derived from the digests alone (no table of job runs). Its blind spot: a job that died
    after opening the day's digest and before writing its deliveries leaves a digest with
    none, which reads as finished; Huey retries that job (`newsletter_tasks_total`).
    """
    now = now or utcnow()
    due = day_due(config, now)
    with session_scope(config) as session:
        newest = store.latest_digest_before(session, date.max)
        finished = _newest_finished(session)
    if newest is None:
        return {"ok": True, "state": "no digest yet", "due": due.isoformat()}
    result: dict[str, object] = {"due": due.isoformat(), "last_success": None}
    if finished is not None:
        age = (now - finished.created_at).total_seconds() / 3600
        result.update(last_success=finished.issue_date.isoformat(), age_hours=round(age, 1))
    if finished is not None and finished.issue_date >= due:
        return {"ok": True, "state": "fresh", **result}
    return {"ok": False, "state": "stale", **result}


def _newest_finished(session: Session) -> Digest | None:
    before = date.max
    for _ in range(DIGESTS_LOOKED_AT):
        digest = store.latest_digest_before(session, before)
        if digest is None:
            return None
        if store.count_unfinished(session, digest.id) == 0:
            return digest
        before = digest.issue_date
    return None


def day_due(config: Settings, now: datetime) -> date:
    """The issue date the schedule promises delivered by `now` (aware): that of the latest
    send day whose daily time, in NEWSLETTER_TIMEZONE, plus the grace, is past."""
    zone = config.zone
    hour, minute = (int(part) for part in config.daily_time.split(":"))
    grace = timedelta(hours=config.daily_grace_hours)
    today = now.astimezone(zone).date()
    for days_back in range(grace.days + 9):  # a send day is at most a week before
        day = today - timedelta(days=days_back)
        if day.weekday() not in config.weekdays:
            continue
        run = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if run.astimezone(UTC) + grace <= now:  # in UTC: a grace across a DST change is exact
            return day
    raise ConfigError(f"NEWSLETTER_SEND_DAYS={config.send_days!r} names no day")
