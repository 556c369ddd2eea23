"""Running the service: `serve` (the web app, for trying it; gunicorn serves it live) and
`worker` (the Huey consumer: the daily job, inbox reads, queued tasks).

Each reads the settings, makes sure its folders take a file and the schema is current, and
only then starts, so that a setting that cannot work stops it with one line, not a traceback
in its first request or task.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from newsletter import db
from newsletter.cli.common import check_folders
from newsletter.config import get_settings
from newsletter.errors import ConfigError

log = logging.getLogger(__name__)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the web app (subscribe, preferences, unsubscribe, archive, feeds); use gunicorn live.

    Example: newsletter serve --port 8000
    """
    from newsletter.logs import setup_logging
    from newsletter.web import create_app
    from newsletter.web.optin import BackgroundSender

    settings = get_settings()
    setup_logging(settings)
    check_folders(settings)
    db.ensure_schema(settings)
    # No worker runs beside it (the Quick start starts none): the confirmation emails of the
    # opt-in are sent by a thread of this process, after each answer.
    create_app(settings, confirmations=BackgroundSender(settings)).run(host=host, port=port)


def worker(
    workers: Annotated[int, typer.Option(help="Worker threads in this process.")] = 1,
    periodic: Annotated[
        bool,
        typer.Option(help="Run the schedule here (daily job, inbox reads): on exactly one worker."),
    ] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Answer Prometheus scrapes at /metrics on this port (default:"
            " NEWSLETTER_METRICS_PORT; unset: no endpoint), on NEWSLETTER_METRICS_HOST.",
        ),
    ] = None,
) -> None:
    """Run the Huey consumer: the daily job (NEWSLETTER_DAILY_TIME in NEWSLETTER_TIMEZONE), the
    inbox reads (NEWSLETTER_INBOX) and queued tasks.

    Logs one line per event on stderr (NEWSLETTER_LOG_FORMAT=json for JSON).
    Example: newsletter worker --workers 2 --metrics-port 9108
    """
    from newsletter import logs, metrics
    from newsletter.worker import tasks

    settings = get_settings()
    logs.setup_logging(settings)
    check_folders(settings)  # the outbox, the queue's file: before a task fails on them
    db.ensure_schema(settings)
    metrics.watch_tasks(tasks.huey)
    port = metrics_port or settings.metrics_port
    if port:
        registry = metrics.exposition_registry()
        metrics.watch_queue(tasks.queue_depth, registry)
        try:
            metrics.serve(port, settings.metrics_host, registry)
        except OSError as error:  # the port is taken, or the address is not this machine's
            raise ConfigError(
                f"cannot serve metrics on {settings.metrics_host}:{port}: {error}"
            ) from error
        log.info("metrics at http://%s:%d/metrics", settings.metrics_host, port)
    tasks.huey.create_consumer(workers=workers, periodic=periodic).run()
