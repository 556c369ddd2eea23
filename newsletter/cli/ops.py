"""Setting up and running the service: init, config, db, serve, worker."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from newsletter import db, store
from newsletter.cli.common import (
    ExitStatus,
    NewsletterGroup,
    check_folders,
    console,
    err_console,
    examples_dir,
    session,
)
from newsletter.cli.common import settings as current_settings
from newsletter.config import read_settings, shown
from newsletter.errors import ConfigError
from newsletter.subscribers import read_subscriber_csv
from newsletter.topics import read_topic_file

log = logging.getLogger(__name__)


def init(
    examples: Annotated[
        bool, typer.Option("--examples", help="Also load the example topics and subscribers.")
    ] = False,
) -> None:
    """Create the var folder, the database and the signing key; optionally load the examples.

    Safe to run again: it changes nothing that exists.
    Example: newsletter init --examples
    """
    settings = current_settings()
    db.upgrade(settings)
    settings.secret()
    console.print(f"Database ready: {shown('database_url', settings.database_url)}")
    if examples:
        _load_examples(settings)


def _load_examples(settings) -> None:
    folder = examples_dir()
    specs = read_topic_file(folder / "topics.toml")
    rows, rejected = read_subscriber_csv(
        (folder / "example.csv").read_text(encoding="utf-8"),
        default_language=settings.default_language,
    )
    with session() as unit:
        topics = [store.upsert_topic(unit, spec) for spec in specs]
        people = [store.import_subscriber(unit, spec, update_existing=False) for _, spec in rows]
    console.print(
        f"Example topics: {topics.count('added')} added ({len(specs)} in {folder / 'topics.toml'});"
        f" example subscribers: {people.count('added')} added ({len(rows)} in example.csv)."
    )
    for row in rejected:
        err_console.print(f"example.csv:{row.line}: rejected: {row.reason}")


def config() -> None:
    """Print the effective settings, secrets and passwords masked, and every problem with them.

    A value that cannot work is shown as it was read, with an error line on stderr saying why;
    then the command exits with 3.
    Example: NEWSLETTER_SMTP_URL=smtp://me:pw@mail.example.org:587 newsletter config
    """
    report = read_settings()
    values = report.settings.masked() if report.settings is not None else {}
    values.update(report.invalid)  # what was read, rather than the default standing in for it
    for name, value in values.items():
        console.print(f"{name}={value}")
    if report.settings is not None and report.settings.env == "production":
        for warning in report.settings.check_production():
            if not warning.startswith(tuple(report.invalid)):  # said below, and better
                err_console.print(f"Warning: {warning}")
    for error in report.errors:
        err_console.print(f"Error: {error}")
    if report.errors:
        raise typer.Exit(code=ExitStatus.CONFIG)


db_app = typer.Typer(cls=NewsletterGroup, help="The database schema (Alembic migrations).")


@db_app.command()
def upgrade() -> None:
    """Migrate the database to the newest schema.

    Example: NEWSLETTER_DATABASE_URL=postgresql+psycopg://localhost/newsletter newsletter db upgrade
    """
    settings = current_settings()
    db.upgrade(settings)
    console.print(f"Schema up to date: {shown('database_url', settings.database_url)}")


@db_app.command()
def current() -> None:
    """Say whether the database schema is up to date.

    Example: newsletter db current
    """
    settings = current_settings()
    if db.schema_is_current(settings):
        console.print("The schema is up to date.")
    else:
        console.print("The schema is behind: run `newsletter db upgrade`.")
        raise typer.Exit(code=1)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the web app (subscribe, preferences, unsubscribe, archive, feeds); use gunicorn live.

    Example: newsletter serve --port 8000
    """
    from newsletter.logs import setup_logging
    from newsletter.web import create_app

    settings = current_settings()
    setup_logging(settings)
    check_folders(settings)
    db.ensure_schema(settings)
    create_app(settings).run(host=host, port=port)


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
    from newsletter import logs, metrics, tasks

    settings = current_settings()
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
