"""`newsletter channels …`: team chat channels (Slack, Discord, Matrix, Feishu/Lark) that get the
digest like a subscriber, on their topics and in their language, posted instead of mailed."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Column, Table

from newsletter import store
from newsletter.cli.common import NewsletterGroup, console, open_session, print_json
from newsletter.config import get_settings
from newsletter.delivery.chat import post_test_notice
from newsletter.errors import InvalidInput
from newsletter.intake.channels import channel_row, channel_spec, channel_subscriber
from newsletter.intake.rhythm import SendClock

app = typer.Typer(
    cls=NewsletterGroup,
    help="Manage team chat channels (Slack, Discord, Matrix, Feishu/Lark) that get the digest.",
)

Name = Annotated[str, typer.Argument(help="The channel's name, as `channels list` shows it.")]


@app.command()
def add(
    platform: Annotated[str, typer.Option(help="slack, discord, matrix or feishu (lark).")],
    url: Annotated[
        str,
        typer.Option(
            "--url",
            "--homeserver",
            help="The incoming-webhook URL (Slack, Discord, Feishu), or Matrix's homeserver URL.",
        ),
    ],
    name: Annotated[str, typer.Option(help="How to name it here: '#lab-papers'.")],
    topic: Annotated[list[str], typer.Option("--topic", "-t", help="A topic name (repeat).")],
    lang: Annotated[str | None, typer.Option("--lang", help="BCP-47 language code.")] = None,
    room: Annotated[
        str | None, typer.Option(help="Matrix: the room id (!abc:example.org).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Matrix: the bot account's access token ('-': read from stdin)."),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(help="Feishu: the bot's signing secret, if it has one ('-': from stdin)."),
    ] = None,
) -> None:
    """Add a chat channel that gets the digest of its topics, in its language.

    Example: newsletter channels add --platform slack --url https://hooks.slack.com/services/T0/B0/XXXX --name "#lab-papers" --topic MLLM --lang zh
    Example: newsletter channels add --platform matrix --homeserver https://matrix.example.org --room '!AbCd:example.org' --token syt_… --name "#papers" --topic SLAM
    """  # noqa: E501 (an example is one line to copy)
    if token and secret:
        raise InvalidInput("give --token (Matrix) or --secret (Feishu), not both")
    given = token or secret
    if given == "-":  # kept out of the shell's history and the process list
        given = sys.stdin.readline().strip()
    channel = channel_spec(platform, url, name, room=room, secret=given)
    spec = channel_subscriber(channel, topic, lang or get_settings().default_language)
    clock = SendClock.of(get_settings())
    with open_session() as session:
        subscriber = store.add_channel(session, channel, spec, "cli", clock=clock)
        topics = ", ".join(t.name for t in subscriber.topics)
    console.print(
        f"Added the {channel.platform.value} channel {channel.label} ({spec.language}) to"
        f" {topics}. Try it: newsletter channels test {_quoted(channel.label)}"
    )


def _quoted(label: str) -> str:
    return f"'{label}'" if any(c in label for c in " #!$&;'\"") else label


@app.command("list")
def list_(json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the chat channels (their URLs shown as scheme and host only: the rest is secret).

    Example: newsletter channels list --json
    """
    with open_session() as session:
        rows = [channel_row(channel) for channel in store.list_subscribers(session, channels=True)]
    if json:
        print_json(rows)
        return
    # Name, URL and room whole, on one line, however narrow the terminal: they say which it is.
    table = Table(
        *(_whole(title, [row[key] or "" for row in rows]) for title, key in _WHOLE[:2]),
        "Platform",
        *(_whole(title, [row[key] or "" for row in rows]) for title, key in _WHOLE[2:]),
        "Topics",
        "Lang",
        "Status",
    )
    for row in rows:
        table.add_row(
            row["name"],
            row["url"],
            row["platform"],
            row["room"] or "",
            ", ".join(row["topics"]),
            row["language"],
            row["status"],
        )
    console.print(table)
    console.print(f"{len(rows)} channel(s)")


_WHOLE = (("Name", "name"), ("URL", "url"), ("Room", "room"))


def _whole(title: str, values: list[str]) -> Column:
    return Column(title, no_wrap=True, min_width=max(map(len, [title, *values])))


@app.command()
def test(name: Name) -> None:
    """Post a short test message to a channel, and say what its platform answered.

    Example: newsletter channels test "#lab-papers"
    """
    with open_session() as session:
        found = store.get_channel(session, name)  # its topics come with it (selectin)
    channel, answer = post_test_notice(get_settings(), found)  # no transaction held meanwhile
    if not answer.ok:
        console.print(f"Not posted to {channel.described()}: {answer.reason}")
        raise typer.Exit(1)
    console.print(f"Posted a test message to {channel.described()}.")


@app.command()
def remove(
    name: Name,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete it and its history instead.")
    ] = False,
) -> None:
    """Stop posting the digest to a channel (history kept), or delete it with --purge.

    Example: newsletter channels remove "#lab-papers"
    """
    with open_session() as session:
        channel = store.get_channel(session, name)
        label = channel.email
        store.remove_subscriber(session, channel, "cli", purge=purge)
    if purge:
        console.print(f"Deleted the channel {label} and its history.")
    else:
        console.print(f"The channel {label} gets no more digests; its history is kept.")
