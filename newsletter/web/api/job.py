"""/api/v1/job: queue the daily job now, and see how it stands (what `newsletter status`
shows)."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from newsletter.daily.send import nothing_to_do
from newsletter.errors import NothingToDo, QueueError
from newsletter.web.api import schemas
from newsletter.web.api.auth import requires, resource
from newsletter.web.common import settings
from newsletter.worker.report import job_report

blueprint = resource("job", "The daily job: run it now, see its status.")


@blueprint.route("/run", methods=["POST"])
@requires("job:run", 409, 503)
@blueprint.response(202, schemas.JobRunOut)
def run_job():
    """Queue the daily job (fetch, build, send) for the workers, as the schedule and
    `newsletter run` do with Redis; follow it with `GET /api/v1/job`. 409 when there is
    nothing to do (no topic, or nobody following one)."""
    config = settings()
    reason = nothing_to_do(config)
    if reason is not None:
        raise NothingToDo(f"nothing to do: {reason}.")
    from newsletter.worker.tasks import daily_job  # the queue opens on first use

    try:
        result = daily_job()
    except redis.RedisError as error:
        raise QueueError(f"the daily job was not queued: {error}") from error
    return {
        "queued": True,
        "task_id": str(result.id),
        "detail": "The daily job is queued for the workers.",
    }, 202


@blueprint.route("", methods=["GET"])
@requires("job:read")
@blueprint.arguments(schemas.JobStatusArgs, location="query")
@blueprint.response(200, schemas.JobStatusOut)
def job_status(args: dict):
    """The queue, the live workers, the next sends, and the latest digest's deliveries with
    its failures: `newsletter status` as JSON."""
    report = job_report(settings(), args["failures"])
    digest = report.digest
    return {
        "queue": {
            "ok": report.queue_ok,
            "problem": report.queue_problem,
            "pending": report.depth.get("pending"),
            "scheduled": report.depth.get("scheduled"),
            "warning": report.idle_warning,
        },
        "workers": [
            {
                "name": beat.name,
                "threads": beat.threads,
                "periodic": beat.periodic,
                "started": _instant(beat.started),
                "last_beat": _instant(beat.beat),
                "doing": beat.doing,
                "down": beat.down,
            }
            for beat in report.workers
        ],
        "next_sends": [slot._asdict() for slot in report.slots],
        "latest_digest": None
        if digest is None
        else {
            "id": digest.id,
            "date": digest.issue_date,
            "deliveries": report.counts,
            "in_flight": [
                {"worker": worker, "count": count, "lease_until": lease}
                for worker, count, lease in report.in_flight
            ],
            "failures": [
                {"email": email, "status": state, "detail": detail}
                for email, state, detail in report.failed
            ],
            "next_due": report.next_due,
        },
    }


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
