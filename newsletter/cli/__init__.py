"""The `newsletter` command: one Typer sub-app per noun, the daily job's verbs at the top."""

from __future__ import annotations

import typer

from newsletter.cli import bounces, daily, ops, subscribers, topics
from newsletter.cli.common import NewsletterGroup

app = typer.Typer(
    cls=NewsletterGroup,
    no_args_is_help=True,
    help="A self-hosted arXiv daily digest. Start with: newsletter init --examples; newsletter run",
)
app.add_typer(topics.app, name="topics")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(ops.db_app, name="db")
app.add_typer(bounces.app, name="bounces")
for command in (ops.init, ops.config, daily.fetch, daily.send, daily.run, daily.preview):
    app.command()(command)
app.command()(ops.serve)
app.command()(ops.worker)


def main() -> None:
    app()
