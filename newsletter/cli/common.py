"""What every command shares: settings, the database, the console, and how errors are shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from newsletter import db
from newsletter.config import Settings, get_settings
from newsletter.errors import NewsletterError

# markup off: paper titles and names are user data, and "[...]" in them must print as is.
console = Console(highlight=False, soft_wrap=True, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


class NewsletterGroup(typer.core.TyperGroup):
    """Turns the errors we raise on purpose into one clear line and exit code 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NewsletterError as error:
            err_console.print(f"Error: {error}")
            raise typer.Exit(code=1) from error


def settings() -> Settings:
    return get_settings()


def ready_settings() -> Settings:
    """Settings, with the database created or migrated where that is allowed (see db)."""
    current = get_settings()
    db.ensure_schema(current)
    return current


@contextmanager
def session() -> Iterator[Session]:
    with db.session_scope(ready_settings()) as unit:
        yield unit


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def examples_dir() -> Path:
    """The example topics and subscribers: shipped in the package, or the checkout's folder."""
    packaged = Path(__file__).resolve().parents[1] / "examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "subscribers"
