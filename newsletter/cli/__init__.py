"""The `newsletter` command: one Typer sub-app per noun, the daily job's verbs at the top."""

from __future__ import annotations

import typer

from newsletter.cli import (
    bounces,
    daily,
    export,
    ops,
    status,
    subscribers,
    topics,
    translate,
    unsubscribes,
)
from newsletter.cli.common import NewsletterGroup

app = typer.Typer(
    cls=NewsletterGroup,
    no_args_is_help=True,
    help="A self-hosted arXiv daily digest. Start with: newsletter init --examples; newsletter run",
)
app.add_typer(topics.app, name="topics")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(ops.db_app, name="db")
app.add_typer(translate.app, name="translate")
app.add_typer(bounces.app, name="bounces")
app.add_typer(unsubscribes.app, name="unsubscribes")
app.add_typer(export.app, name="export")
for command in (ops.init, ops.config, daily.fetch, daily.send, daily.run, daily.preview):
    app.command()(command)
app.command()(ops.serve)
app.command()(ops.worker)
app.command()(status.status)


def main() -> None:
    app()
