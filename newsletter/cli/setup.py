"""Setting the service up: `init`, `config`, and the database schema (`db upgrade`, `db current`).

Running it, once set up, is `newsletter.cli.services` (`serve`, `worker`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter import db, store
from newsletter.cli.common import (
    ExitStatus,
    NewsletterGroup,
    console,
    err_console,
    examples_dir,
    open_session,
)
from newsletter.config import get_settings, read_settings, shown
from newsletter.intake.rhythm import SendClock
from newsletter.intake.subscribers import read_subscriber_csv
from newsletter.intake.topic_files import read_topic_file


def init(
    examples: Annotated[
        bool, typer.Option("--examples", help="Also load the example topics and subscribers.")
    ] = False,
) -> None:
    """Create the var folder, the database and the signing key; optionally load the examples.

    Safe to run again: it changes nothing that exists.
    Example: newsletter init --examples
    """
    settings = get_settings()
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
    with open_session() as session:
        topics = [store.upsert_topic(session, spec) for spec in specs]
        clock = SendClock.of(settings)
        people = [
            store.import_subscriber(session, spec, update_existing=False, clock=clock)
            for _, spec in rows
        ]
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
    settings = get_settings()
    db.upgrade(settings)
    console.print(f"Schema up to date: {shown('database_url', settings.database_url)}")


@db_app.command()
def current() -> None:
    """Say whether the database schema is up to date.

    Example: newsletter db current
    """
    settings = get_settings()
    if db.schema_is_current(settings):
        console.print("The schema is up to date.")
    else:
        console.print("The schema is behind: run `newsletter db upgrade`.")
        raise typer.Exit(code=1)
