"""The `newsletter` command: the daily job's verbs and the service's at the top, one Typer
sub-app per noun below them.

One module per area: `daily` (fetch, send, run, preview), `setup` (init, config, db),
`services` (serve, worker), `status`, and a sub-app each for `topics`, `subscribers`,
`channels`, `translate`, `bounces`, `unsubscribes`, `export`, `webhooks` and `tokens` (the
JSON API's). What they share (the settings, the database, the console, errors in words and
their exit status) is `common`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli import (
    bounces,
    channels,
    daily,
    export,
    services,
    setup,
    status,
    subscribers,
    tokens,
    topics,
    translate,
    unsubscribes,
    webhooks,
)
from newsletter.cli.common import DEBUG, NewsletterGroup, err_console
from newsletter.config import unknown_variables

app = typer.Typer(
    cls=NewsletterGroup,
    no_args_is_help=True,
    help="A self-hosted arXiv daily digest. Start with: newsletter init --examples; newsletter run",
)


@app.callback()
def before_every_command(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="NEWSLETTER_DEBUG",
            help="On an error, also show its traceback (NEWSLETTER_DEBUG=1 does the same).",
        ),
    ] = False,
) -> None:
    # Before every command: a misspelt setting is only a warning, because the environment is
    # often shared (one .env or EnvironmentFile for the web app, the worker and the versions
    # of an upgrade), where a name one of them does not know must not stop it; it still
    # changes nothing, so each command says so, with the name that was probably meant.
    ctx.meta[DEBUG] = debug
    for warning in unknown_variables():
        err_console.print(f"Warning: {warning}")


# Help lists these commands first, in this order, then the sub-apps.
for command in (
    setup.init,
    setup.config,
    daily.fetch,
    daily.send,
    daily.run,
    daily.preview,
    services.serve,
    services.worker,
    status.status,
):
    app.command()(command)

app.add_typer(topics.app, name="topics")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(channels.app, name="channels")
app.add_typer(setup.db_app, name="db")
app.add_typer(translate.app, name="translate")
app.add_typer(bounces.app, name="bounces")
app.add_typer(unsubscribes.app, name="unsubscribes")
app.add_typer(export.app, name="export")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(tokens.app, name="tokens")


def main() -> None:
    app()
