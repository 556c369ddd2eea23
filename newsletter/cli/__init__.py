"""The `newsletter` command: the daily job's verbs and the service's at the top, one Typer
sub-app per noun below them.

One module per area: `daily` (fetch, send, run, preview), `setup` (init, config, db),
`services` (serve, worker), `status`, and a sub-app each for `topics`, `subscribers`,
`channels`, `translate`, `bounces`, `unsubscribes`, `export`, `webhooks` and `tokens` (the
JSON API's). What they share (the settings, the database, the console, errors in words and
their exit status) is `common`.

A command's module is imported when that command runs (or its own help is asked for), not
before: between them they import the whole program (SQLAlchemy, Flask, Huey, the renderers,
scikit-learn...), which takes seconds, and `newsletter --help` or `subscribers list` needs a
small part of it. So the top-level help lists each command with the line written in
`COMMANDS`, which tests/test_cli.py holds to the command's own help.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated

import typer
import typer.core

from newsletter.cli.common import DEBUG, NewsletterGroup, err_console

if TYPE_CHECKING:
    # Typer 0.29 carries its own Click (`typer._click`), whose classes its groups are made of;
    # the `click` package is Flask's dependency, not Typer's nor the CLI's.
    from typer._click import Command, HelpFormatter

COMMANDS = {
    "init": (
        "setup",
        "init",
        "Create the var folder, the database and the signing key; optionally load the examples.",
    ),
    "config": (
        "setup",
        "config",
        "Print the effective settings, secrets and passwords masked, and every problem with them.",
    ),
    "fetch": (
        "daily",
        "fetch",
        "Fetch the new arXiv papers of every topic, and ask Hugging Face for their code.",
    ),
    "send": (
        "daily",
        "send",
        "Build today's digest and send it to everyone who has not had it yet.",
    ),
    "run": ("daily", "run", "Run the whole daily job now: fetch, build, send."),
    "preview": (
        "daily",
        "preview",
        "Write a subscriber's next email as it will be sent (or a topic set's digest), and open"
        " it\nif asked.",
    ),
    "serve": (
        "services",
        "serve",
        "Serve the web app (subscribe, preferences, unsubscribe, archive, feeds); use gunicorn"
        " live.",
    ),
    "worker": (
        "services",
        "worker",
        "Run the Huey consumer: the daily job (NEWSLETTER_DAILY_TIME in NEWSLETTER_TIMEZONE),"
        " the\ninbox reads (NEWSLETTER_INBOX) and queued tasks.",
    ),
    "status": (
        "status",
        "status",
        "Show the live workers and what they wait for, the queue, the next sends (by time and"
        "\ncadence, with how many readers each), the latest digest's deliveries by state, and"
        "\nfailures and retries with their reasons.",
    ),
    "topics": ("topics", "app", "Define topics: what each one matches on arXiv."),
    "subscribers": (
        "subscribers",
        "app",
        "Manage subscribers: their topics, language, mail format, the authors they follow and"
        " their rhythm.",
    ),
    "channels": (
        "channels",
        "app",
        "Manage team chat channels (Slack, Discord, Matrix, Feishu/Lark) that get the digest.",
    ),
    "db": ("setup", "db_app", "The database schema (Alembic migrations)."),
    "translate": (
        "translate",
        "app",
        "Translate stored abstracts that have no translation yet in the subscribers' languages.",
    ),
    "bounces": ("bounces", "app", "Bounces: mark addresses that cannot receive mail."),
    "unsubscribes": (
        "unsubscribes",
        "app",
        "Unsubscribe requests sent by email (List-Unsubscribe's mailto:).",
    ),
    "export": (
        "export",
        "app",
        "Export the papers: the seed's Markdown page, or its data as JSON.",
    ),
    "webhooks": (
        "webhooks",
        "app",
        "Webhooks: signed HTTP POSTs to your URLs when a digest is built or sent, or a subscriber"
        " confirms, leaves or bounces.",
    ),
    "tokens": ("tokens", "app", "API tokens: create one per program, with the scopes it needs."),
}
"""Each command, in the order help lists them: its module (in newsletter.cli), the function or
sub-app there, and the first paragraph of its help."""


class LazyGroup(NewsletterGroup):
    """The top-level group: a command's module is imported when the command is looked up, and
    the help's list of commands imports none."""

    listing = False

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            if self.listing:
                return typer.core.TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def load_command(name: str) -> Command:
    """The command as the top-level app would have made it with `app.command()` or
    `app.add_typer(...)`: made by Typer under a parent of its own."""
    module, attribute, _help = COMMANDS[name]
    target = getattr(importlib.import_module(f"newsletter.cli.{module}"), attribute)
    parent = typer.Typer(add_completion=False)
    parent.callback()(lambda: None)  # a group, not a lone command
    if isinstance(target, typer.Typer):
        parent.add_typer(target, name=name)
    else:
        parent.command(name=name)(target)
    return typer.main.get_command(parent).commands[name]


app = typer.Typer(
    cls=LazyGroup,
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
    from newsletter.config import unknown_variables

    ctx.meta[DEBUG] = debug
    for warning in unknown_variables():
        err_console.print(f"Warning: {warning}")


def main() -> None:
    app()
