"""Setting up and running the service: init, config, db, serve, worker."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from newsletter import db, store
from newsletter.cli.common import NewsletterGroup, console, err_console, examples_dir, session
from newsletter.cli.common import settings as current_settings
from newsletter.subscribers import read_subscriber_csv
from newsletter.topics import read_topic_file


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
    console.print(f"Database ready: {_masked_db(settings.database_url)}")
    if examples:
        _load_examples(settings)


def _masked_db(url: str) -> str:
    from newsletter.config import mask_url_password

    return mask_url_password(url)


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
    """Print the effective settings, secrets masked.

    Example: NEWSLETTER_SMTP_URL=smtp://me:pw@mail.example.org:587 newsletter config
    """
    settings = current_settings()
    for name, value in settings.masked().items():
        console.print(f"{name}={value}")
    if settings.env == "production":
        for problem in settings.check_production():
            err_console.print(f"Warning: {problem}")


db_app = typer.Typer(cls=NewsletterGroup, help="The database schema (Alembic migrations).")


@db_app.command()
def upgrade() -> None:
    """Migrate the database to the newest schema.

    Example: NEWSLETTER_DATABASE_URL=postgresql+psycopg://localhost/newsletter newsletter db upgrade
    """
    settings = current_settings()
    db.upgrade(settings)
    console.print(f"Schema up to date: {_masked_db(settings.database_url)}")


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
    from newsletter.web import create_app

    settings = current_settings()
    db.ensure_schema(settings)
    create_app(settings).run(host=host, port=port)


def worker(
    workers: Annotated[int, typer.Option(help="Worker threads in this process.")] = 1,
    periodic: Annotated[
        bool,
        typer.Option(help="Run the schedule here (daily job, inbox reads): on exactly one worker."),
    ] = True,
) -> None:
    """Run the Huey consumer: the daily job (NEWSLETTER_DAILY_TIME in NEWSLETTER_TIMEZONE), the
    inbox reads (NEWSLETTER_INBOX) and queued tasks.

    Example: newsletter worker --workers 2
    """
    from newsletter.tasks import huey

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    db.ensure_schema(current_settings())
    huey.create_consumer(workers=workers, periodic=periodic).run()
