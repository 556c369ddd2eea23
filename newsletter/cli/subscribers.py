"""`newsletter subscribers …`: who gets the digest, on which topics, language and format, which
authors they follow, and their rhythm (cadence, weekday, hour and time zone)."""

from __future__ import annotations

import csv
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from newsletter import store
from newsletter.cli import reading
from newsletter.cli.common import NewsletterGroup, console, err_console, open_session, print_json
from newsletter.config import get_settings
from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import (
    KEEP,
    ScheduleChange,
    SendClock,
    normalise_cadence,
    normalise_day,
    normalise_hour,
    normalise_zone,
)
from newsletter.intake.subscribers import (
    CSV_COLUMNS,
    RejectedRow,
    SubscriberSpec,
    followed_names,
    normalise_email,
    normalise_format,
    normalise_language,
    read_subscriber_csv,
    subscriber_name,
    topic_names,
)
from newsletter.models import MailFormat, Subscriber, SubscriberStatus
from newsletter.schedules import WEEKDAYS, zone_named

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


def _address(email: str) -> str:
    return normalise_email(email, check_deliverability=get_settings().check_deliverability)


def _schedule_change(
    cadence: str | None, day: str | None, hour: str | None, zone: str | None
) -> ScheduleChange:
    """The rhythm options as typed, checked: an option not given keeps what the reader has."""
    return ScheduleChange(
        cadence=KEEP if cadence is None else normalise_cadence(cadence),
        hour=KEEP if hour is None else normalise_hour(hour),
        day=KEEP if day is None else normalise_day(day),
        zone=KEEP if zone is None else normalise_zone(zone),
    )


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
    language = normalise_language(lang or get_settings().default_language)
    chosen_format = normalise_format(mail_format)
    spec = SubscriberSpec(
        _address(email),
        tuple(topic),
        name,
        language,
        chosen_format,
        tuple(follow or ()),
        _schedule_change(cadence, day, hour, tz),
    )
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


def _row(subscriber: Subscriber, clock: SendClock, follows: tuple[str, ...] = ()) -> dict:
    schedule = store.schedule_of(subscriber)
    due = subscriber.next_send_at
    zone = zone_named(schedule.zone or clock.zone)
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "topics": [topic.name for topic in subscriber.topics],
        "language": subscriber.language,
        "format": subscriber.format.value,
        "follows": list(follows),
        "cadence": subscriber.cadence.value,
        "day": WEEKDAYS[schedule.day or 0] if schedule.cadence == "weekly" else None,
        "hour": schedule.hour,
        "timezone": schedule.zone,
        "rhythm": clock.describe(schedule),
        # When they are next due, in their own zone; None: whenever a digest is built.
        "next_send_at": due.astimezone(zone).isoformat(timespec="minutes") if due else None,
        "status": subscriber.status.value,
        "created_at": subscriber.created_at.isoformat(timespec="seconds"),
    }


def _rows(session, subscribers: list[Subscriber]) -> list[dict]:
    follows = store.follow_names_of(session, (s.id for s in subscribers))
    clock = SendClock.of(get_settings())
    return [_row(s, clock, follows[s.id]) for s in subscribers]


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
    # Everything typed is checked before the database is touched: a bad value changes nothing.
    chosen_format = normalise_format(mail_format) if mail_format is not None else None
    language = normalise_language(lang) if lang is not None else None
    new_name = subscriber_name(name) if name is not None else None
    added, removed = topic_names(add_topic or ()), topic_names(remove_topic or ())
    to_follow, to_unfollow = followed_names(follow or ()), followed_names(unfollow or ())
    change = _schedule_change(cadence, day, hour, tz)
    clock = SendClock.of(get_settings())
    with open_session() as session:
        subscriber = store.get_subscriber(session, email)
        schedule = change.applied_to(store.schedule_of(subscriber))
        topics = {t.id: t for t in subscriber.topics}
        for topic in store.get_topics(session, added):
            topics[topic.id] = topic
        for topic in store.get_topics(session, removed):
            topics.pop(topic.id, None)
        if not topics:
            raise InvalidInput(
                "a subscriber needs at least one topic (or use `subscribers remove`)"
            )
        store.edit_subscriber(
            subscriber,
            list(topics.values()),
            language=language,
            mail_format=chosen_format,
            name=new_name,
        )
        if resubscribe:
            store.resubscribe(session, subscriber, "cli")
        store.remove_follows(session, subscriber.id, to_unfollow.values())
        store.add_follows(session, subscriber.id, to_follow.values())
        rhythm_changed = store.set_schedule(subscriber, schedule, clock)
        row = _rows(session, [subscriber])[0]
        topics_text = ", ".join(row["topics"])
        detail = f"{topics_text} ({row['language']}, {row['format']})"
        if to_follow or to_unfollow:
            detail += f"; follows {', '.join(row['follows']) or 'no one'}"
        if rhythm_changed:
            detail += f"; {row['rhythm']}"
        store.log_event(session, subscriber, "changed", "cli", detail)
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
        if purge:
            store.purge_subscriber(session, subscriber)
            console.print(f"Deleted {email} and their history.")
        else:
            store.set_status(session, subscriber, SubscriberStatus.unsubscribed, "cli")
            console.print(f"Unsubscribed {subscriber.email}; their history is kept.")


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
    # Each row is checked in full (fields, then that its topics exist) before anything is
    # written, then written in a savepoint of its own: a row the database refuses is undone
    # alone and reported, so the report and the database agree, on SQLite and PostgreSQL.
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: cannot read it as UTF-8 text ({error})") from error
    config = get_settings()
    rows, rejected = read_subscriber_csv(
        text,
        default_language=config.default_language,
        check_deliverability=config.check_deliverability,
    )
    outcomes: dict[str, int] = {}
    clock = SendClock.of(config)
    with open_session() as session:
        checked = []
        for line, spec in rows:
            try:
                store.get_topics(session, spec.topics)  # reads only
            except InvalidInput as error:
                rejected.append(RejectedRow(line, str(error), spec.email))
                continue
            checked.append((line, spec))
        for line, spec in checked:
            try:
                write = partial(
                    store.import_subscriber, session, spec, update_existing=update, clock=clock
                )
                outcome = store.in_savepoint(session, write)
            except InvalidInput as error:
                rejected.append(RejectedRow(line, str(error), spec.email))
                continue
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    for row in sorted(rejected, key=lambda r: r.line):
        err_console.print(f"{path}:{row.line}: rejected: {row.reason}")
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    console.print(f"{summary or 'nothing imported'}; {len(rejected)} rejected.")
    if rejected:
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
