"""`newsletter subscribers …`: who gets the digest, on which topics, language and format, which
authors they follow, and their rhythm (cadence, weekday, hour and time zone)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from newsletter import store
from newsletter.cli import reading
from newsletter.cli.common import NewsletterGroup, console, err_console, open_session, print_json
from newsletter.config import get_settings
from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import SendClock, schedule_change
from newsletter.intake.subscribers import CSV_COLUMNS, SubscriberEdit, new_subscriber
from newsletter.models import MailFormat, Subscriber, SubscriberStatus

app = typer.Typer(
    cls=NewsletterGroup,
    help="Manage subscribers: their topics, language, mail format, the authors they follow and"
    " their rhythm.",
)

Topics = Annotated[list[str], typer.Option("--topic", "-t", help="A topic name (repeat).")]
FOLLOW_HELP = (
    "An author to follow, as arXiv writes them: 'Kaiming He', 'K. He' or 'He, Kaiming' (repeat)."
)
FORMAT_HELP = "html (HTML with a plain-text alternative) or text (plain text only)."
Cadence = Annotated[
    str | None,
    typer.Option(
        "--cadence", help="daily (each new digest, on arXiv's announcement days) or weekly."
    ),
]
Day = Annotated[
    str | None,
    typer.Option("--day", help="A weekly reader's weekday: mon ... sun or Monday (default mon)."),
]
Hour = Annotated[
    str | None,
    typer.Option(
        "--hour",
        help="Their local hour, 0-23 (7, 07 or 7:00); none: as soon as the digest is built"
        " (the default; weekly readers then get it at NEWSLETTER_DAILY_TIME).",
    ),
]
Zone = Annotated[
    str | None,
    typer.Option("--tz", help="Their IANA time zone (Asia/Shanghai); none: NEWSLETTER_TIMEZONE's."),
]


@app.command()
def add(
    email: str,
    topic: Topics,
    name: Annotated[str, typer.Option(help="How to greet them.")] = "",
    lang: Annotated[str | None, typer.Option("--lang", help="BCP-47 language code.")] = None,
    mail_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = MailFormat.html.value,
    follow: Annotated[list[str] | None, typer.Option(help=FOLLOW_HELP)] = None,
    cadence: Cadence = None,
    day: Day = None,
    hour: Hour = None,
    tz: Zone = None,
) -> None:
    """Add a subscriber, with their topics, language, mail format, followed authors and rhythm.

    Without --cadence, --hour or --tz they get each daily digest as soon as it is built.
    Example: newsletter subscribers add ada@example.org --topic MLLM --lang zh --follow "Kaiming He"
    Example: newsletter subscribers add li@example.org --topic SLAM --cadence weekly --day mon --hour 7 --tz Asia/Shanghai
    """  # noqa: E501 (an example is one line to copy)
    config = get_settings()
    spec = new_subscriber(
        email,
        topic,
        name=name,
        language=lang,
        mail_format=mail_format,
        follows=follow or (),
        schedule=schedule_change(cadence, day, hour, tz),
        default_language=config.default_language,
        check_deliverability=config.check_deliverability,
    )
    language, chosen_format = spec.language, spec.format
    clock = SendClock.of(get_settings())
    with open_session() as session:
        subscriber = store.add_subscriber(session, spec, source="cli", clock=clock)
        topics = ", ".join(t.name for t in subscriber.topics)
        row = _rows(session, [subscriber])[0]
    following = f"; follows {', '.join(spec.follows)}" if spec.follows else ""
    console.print(
        f"Added {subscriber.email} ({language}, {chosen_format}) to {topics}{following}."
        f" Rhythm: {_rhythm_text(row)}."
    )


def _rows(session, subscribers: list[Subscriber]) -> list[dict]:
    return store.subscriber_rows(session, subscribers, SendClock.of(get_settings()))


def _rhythm_text(row: dict) -> str:
    """ "weekly on Monday at 07:00 Asia/Shanghai, next 2026-12-07T07:00+08:00"."""
    due = row["next_send_at"]
    return f"{row['rhythm']}, next {due}" if due else row["rhythm"]


def _cells(row: dict, separator: str) -> tuple[str, ...]:
    """A subscriber's row as the CSV export writes it (the columns `import` reads, then the
    status), topics and follows joined; the table shows the first six."""
    topics, follows = separator.join(row["topics"]), separator.join(row["follows"])
    hour, day, zone = row["hour"], row["day"], row["timezone"]
    return (
        row["email"],
        row["name"],
        topics,
        row["language"],
        row["format"],
        follows,
        row["cadence"],
        day or "",
        "" if hour is None else str(hour),
        zone or "",
        row["status"],
    )


@app.command("list")
def list_(
    topic: Annotated[str | None, typer.Option("--topic", "-t", help="Only this topic.")] = None,
    status: Annotated[SubscriberStatus | None, typer.Option(help="Only this status.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List subscribers.

    Example: newsletter subscribers list --topic SLAM --status active --json
    """
    with open_session() as session:
        chosen = store.get_topic(session, topic) if topic else None
        rows = _rows(session, store.list_subscribers(session, chosen, status))
    if json:
        print_json(rows)
        return
    table = Table("Name", "Topics", "Lang", "Format", "Follows", "Rhythm", "Status")
    # The address whole, on one line, however narrow the terminal: it is what a reader is.
    width = max((len(row["email"]) for row in rows), default=5)
    table.columns.insert(0, Column("Email", no_wrap=True, min_width=width))
    for row in rows:
        table.add_row(*_cells(row, ", ")[:6], _rhythm_text(row), row["status"])
    console.print(table)
    console.print(f"{len(rows)} subscriber(s)")


@app.command()
def show(email: str) -> None:
    """Show a subscriber (topics, language, mail format, followed authors, rhythm and when they
    are next due, in their time zone) and their history.

    Example: newsletter subscribers show ada@example.org
    """
    with open_session() as session:
        subscriber = store.get_subscriber(session, email)
        row = _rows(session, [subscriber])[0]
        if row["next_send_at"] is None:
            row["next_send_at"] = "as soon as a digest is built"
        for key, value in row.items():
            shown = ", ".join(value) if isinstance(value, list) else value
            console.print(f"{key:>10}: {'' if shown is None else shown}")
        console.print("   history:")
        for event in store.events_of(session, subscriber):
            when = event.at.isoformat(timespec="seconds")
            console.print(f"    {when}  {event.kind:<13} via {event.source:<9} {event.detail}")


@app.command()
def edit(
    email: str,
    add_topic: Annotated[list[str] | None, typer.Option(help="Follow another topic.")] = None,
    remove_topic: Annotated[list[str] | None, typer.Option(help="Stop following one.")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="New language code.")] = None,
    mail_format: Annotated[
        str | None, typer.Option("--format", help=f"New mail format: {FORMAT_HELP}")
    ] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    resubscribe: Annotated[
        bool, typer.Option(help="Make an unsubscribed or bounced address active again.")
    ] = False,
    follow: Annotated[list[str] | None, typer.Option(help=FOLLOW_HELP)] = None,
    unfollow: Annotated[
        list[str] | None, typer.Option(help="Stop following an author, however written (repeat).")
    ] = None,
    cadence: Cadence = None,
    day: Day = None,
    hour: Hour = None,
    tz: Zone = None,
) -> None:
    """Change a subscriber's topics, language, mail format, name, followed authors or rhythm.

    A new cadence, weekday, hour or zone makes them due at the next such moment from now; their
    next digest still starts where their last one ended, so no paper is lost or repeated.
    Example: newsletter subscribers edit ada@example.org --add-topic NeRF --follow "Kaiming He"
    Example: newsletter subscribers edit ada@example.org --cadence daily --hour none --tz none
    """
    change = SubscriberEdit.checked(
        add_topics=add_topic or (),
        remove_topics=remove_topic or (),
        language=lang,
        mail_format=mail_format,
        name=name,
        follow=follow or (),
        unfollow=unfollow or (),
        schedule=schedule_change(cadence, day, hour, tz),
        resubscribe=resubscribe,
    )
    clock = SendClock.of(get_settings())
    with open_session() as session:
        subscriber = store.get_subscriber(session, email)
        row = store.apply_subscriber_edit(session, subscriber, change, clock=clock, source="cli")
    topics_text = ", ".join(row["topics"])
    following = f"; follows {', '.join(row['follows'])}" if row["follows"] else ""
    console.print(
        f"{row['email']}: {topics_text} ({row['language']}, {row['format']}, {row['status']})"
        f"{following}; {_rhythm_text(row)}"
    )


@app.command()
def remove(
    email: str,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete them and their history for good.")
    ] = False,
) -> None:
    """Unsubscribe someone (history kept), or delete them with --purge.

    Example: newsletter subscribers remove ada@example.org
    """
    with open_session() as session:
        subscriber = store.get_subscriber(session, email)
        address = subscriber.email
        store.remove_subscriber(session, subscriber, "cli", purge=purge)
    if purge:
        console.print(f"Deleted {email} and their history.")
    else:
        console.print(f"Unsubscribed {address}; their history is kept.")


@app.command("import")
def import_(
    path: Path,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Overwrite name, topics, language, format, follows, rhythm of known addresses.",
        ),
    ] = False,
) -> None:
    """Import subscribers from a CSV file (email,name,topics,language,format,follows; ';' splits).

    Language, format and follows are optional columns (format: html, the default, or text;
    follows: authors' names separated by ';'), and so are the rhythm's: cadence (daily or
    weekly), day (mon ... sun), hour (0-23, or none) and timezone (IANA, or none); an empty
    cell keeps what a known address has. Every rejected row is reported with its line number;
    the good rows are kept, and a row's name that cannot be followed, or a bad rhythm value,
    is reported on its line while the rest of the row is imported.
    Example: newsletter subscribers import subscribers/example.csv
    """
    config = get_settings()
    # Read as it is imported (a list of any length in little memory); a file that turns out
    # not to be UTF-8 text part-way imports nothing, as one that is refused at once.
    try:
        lines = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it as UTF-8 text ({error})") from error
    try:
        with lines, open_session() as session:
            report = store.import_subscribers(
                session,
                lines,
                update=update,
                clock=SendClock.of(config),
                default_language=config.default_language,
                check_deliverability=config.check_deliverability,
            )
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: cannot read it as UTF-8 text ({error})") from error
    for row in report.rejected:
        err_console.print(f"{path}:{row.line}: rejected: {row.reason}")
    console.print(report.summary())
    if report.rejected:
        raise typer.Exit(code=1)


@app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
    ] = None,
    status: Annotated[SubscriberStatus | None, typer.Option(help="Only this status.")] = None,
) -> None:
    """Export subscribers as CSV, in the format `import` reads (plus their status).

    Example: newsletter subscribers export -o subscribers.csv
    """
    with open_session() as session:
        rows = _rows(session, store.list_subscribers(session, status=status))
    handle = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        writer = csv.writer(handle)
        writer.writerow((*CSV_COLUMNS, "status"))
        for row in rows:
            writer.writerow(_cells(row, ";"))
    finally:
        if output:
            handle.close()
    if output:
        console.print(f"Wrote {len(rows)} subscriber(s) to {output}.")


# The reading list and seeds live in cli/reading.py, under this group's name.
app.command("library")(reading.library)
app.command("seed")(reading.seed)
