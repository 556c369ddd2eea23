"""Importing a CSV of subscribers, a chunk of rows at a time: the CLI's `subscribers import` and
the API's, at the speed of a few statements per thousand rows rather than some twenty a row.

What a row becomes is what `import_subscriber` makes of it alone; only the writing is shared:
the topics are read once, the addresses of a chunk are looked up in one SELECT, and its new
subscribers, their topics, follows and events are written a table at a time (on PostgreSQL as
a COPY, which its server takes in as one statement rather than an INSERT a row). A chunk is
written in a savepoint; when the database refuses any of it, the chunk is undone and written
again a row at a time, each in a savepoint of its own, so the row refused is undone and
reported alone and every other row is kept, as before. On PostgreSQL the server's answer to a
chunk's last rows is read once the next chunk has been read (`_write_chunk`), so the two
work at once rather than in turn.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput
from newsletter.intake.rhythm import ScheduleChange, SendClock
from newsletter.intake.subscribers import (
    ImportReport,
    RejectedRow,
    SubscriberSpec,
    email_key,
    followed_names,
    subscriber_csv_rows,
)
from newsletter.intake.webhooks import SUBSCRIBER_EVENTS
from newsletter.models import (
    Cadence,
    Event,
    Follow,
    MailFormat,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    new_public_id,
    utcnow,
)
from newsletter.schedules import Schedule
from newsletter.store.subscribers import IN_LIST_LIMIT, import_known_subscriber, one_of
from newsletter.store.topics import TopicsByName
from newsletter.store.transactions import savepoint

IMPORT_CHUNK = 1_000
"""Rows written together: one SELECT and a few INSERTs each (within SQLite's and PostgreSQL's
limits on bound values, and small enough that a refused chunk is soon written again)."""
assert IMPORT_CHUNK <= IN_LIST_LIMIT


@dataclass(frozen=True)
class ImportRow:
    """A row checked in full (its fields, and that its topics exist), not written yet."""

    line: int
    spec: SubscriberSpec
    topics: list[Topic]


def import_subscribers(
    session: Session,
    csv_text: str | Iterable[str],
    *,
    update: bool,
    clock: SendClock,
    default_language: str,
    check_deliverability: bool = False,
    chunk_size: int | None = None,
) -> ImportReport:
    """Import a CSV's rows (see `subscriber_csv_rows`: its text, or its lines as a file gives
    them); the report says what became of each.

    Each row is checked in full (fields, then that its topics exist) before it is written,
    then written with its chunk; a row the database refuses is undone alone and reported, so
    the report and the database agree, on SQLite and PostgreSQL."""
    lines = io.StringIO(csv_text) if isinstance(csv_text, str) else csv_text
    chunk_size = chunk_size or IMPORT_CHUNK
    report = ImportReport()
    topics = TopicsByName(session)
    chunk: list[ImportRow] = []
    writing: Iterator[None] = iter(())  # the chunk before, its last rows with the database
    try:
        for row in subscriber_csv_rows(
            lines, default_language=default_language, check_deliverability=check_deliverability
        ):
            if isinstance(row, RejectedRow):
                report.rejected.append(row)
                continue
            line, spec = row
            try:
                chunk.append(ImportRow(line, spec, topics.get(spec.topics)))
            except InvalidInput as error:
                report.rejected.append(RejectedRow(line, str(error), spec.email))
                continue
            if len(chunk) >= chunk_size:
                writing = _write_behind(writing, session, chunk, report, update=update, clock=clock)
                chunk = []
        writing = _write_behind(writing, session, chunk, report, update=update, clock=clock)
    finally:
        for _ in writing:  # the last chunk answered (or, on the way out, the one left open)
            pass
    report.rejected.sort(key=lambda rejected: rejected.line)
    return report


def _write_behind(
    writing: Iterator[None],
    session: Session,
    chunk: list[ImportRow],
    report: ImportReport,
    **how: object,
) -> Iterator[None]:
    """The chunk before finished (`writing`: its last rows answered, its savepoint released or
    its rows written again one by one), then this chunk begun: back as soon as its last rows
    are sent, so the next chunk is read while the database takes them in."""
    for _ in writing:
        pass
    writing = _write_chunk(session, chunk, report, **how)
    next(writing, None)
    return writing


def _write_chunk(
    session: Session, chunk: list[ImportRow], report: ImportReport, **how: object
) -> Iterator[None]:
    """Write the chunk in a savepoint; paused once (a yield), after its last rows are sent and
    before the database's answer is read: on PostgreSQL the server checks and stores them
    (the foreign keys of `subscriber_topics`, most of its time) while the caller reads and
    checks the next chunk, instead of the two waiting on each other. A refusal is seen when
    the answer is read, still in the chunk's savepoint, and is dealt with as any other."""
    if not chunk:
        return
    try:
        with savepoint(session):
            done, answered = _import_rows(session, chunk, **how)
            try:
                yield
            finally:
                answered()
    except InvalidInput as error:
        if len(chunk) == 1:
            done = {chunk[0].line: RejectedRow(chunk[0].line, str(error), chunk[0].spec.email)}
        else:
            # The database refused something of the chunk: each of its rows again, alone.
            done = {}
            for row in chunk:
                _write_alone(session, row, done, **how)
    for row in chunk:
        outcome = done.get(row.line)
        if isinstance(outcome, RejectedRow):
            report.rejected.append(outcome)
        elif outcome is not None:
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1


def _write_alone(session: Session, row: ImportRow, done: dict, **how: object) -> None:
    """One row in a savepoint of its own, after its chunk was refused."""
    try:
        with savepoint(session):
            written, answered = _import_rows(session, [row], **how)
            answered()
        done.update(written)
    except InvalidInput as error:
        done[row.line] = RejectedRow(row.line, str(error), row.spec.email)


def _import_rows(
    session: Session, rows: list[ImportRow], *, update: bool, clock: SendClock
) -> tuple[dict[int, str | RejectedRow], Callable[[], None]]:
    """Write these rows: what became of each, by line (an outcome, or why it was rejected),
    and a function that waits for the database's answer to the last rows sent (`_send_table`:
    it raises what the database refused of them)."""
    keys = [email_key(row.spec.email) for row in rows]
    known = {
        subscriber.email_key: subscriber
        for subscriber in session.scalars(
            select(Subscriber).where(one_of(session, Subscriber.email_key, keys))
        )
    }
    done: dict[int, str | RejectedRow] = {}
    new: list[tuple[ImportRow, Schedule]] = []
    schedules: dict[ScheduleChange, Schedule] = {}  # a chunk asks for a few rhythms
    for row, key in zip(rows, keys, strict=True):
        existing = known.get(key)
        try:
            if existing is None:
                change = row.spec.schedule
                if change not in schedules:
                    schedules[change] = change.applied_to(Schedule())
                new.append((row, schedules[change]))
                done[row.line] = "added"
            else:
                done[row.line] = import_known_subscriber(
                    session, existing, row.spec, row.topics, update_existing=update, clock=clock
                )
        except InvalidInput as error:
            done[row.line] = RejectedRow(row.line, str(error), row.spec.email)
    session.flush()  # an update refused is refused here, inside the savepoint
    return done, _insert_new(session, new, clock)


def _insert_new(
    session: Session, new: list[tuple[ImportRow, Schedule]], clock: SendClock
) -> Callable[[], None]:
    """New subscribers with their topics, follows and `subscribed` events, a table at a time:
    the same rows `add_subscriber` writes one by one. The last table's rows are sent and not
    waited for (see `_write_chunk`): what is returned waits for the database's answer."""
    if not new:
        return _answered
    now = utcnow()
    # A chunk's rows ask for a few rhythms and name a few sets of topics: each one's columns
    # are made once (the same Schedule object for the same rhythm, see `_import_rows`).
    rhythms: dict[int, dict] = {}
    records = []
    for row, schedule in new:
        rhythm = rhythms.get(id(schedule))
        if rhythm is None:
            rhythm = rhythms[id(schedule)] = {
                "cadence": Cadence(schedule.cadence),
                "send_hour": schedule.hour,
                "send_day": schedule.day,
                "timezone": schedule.zone,
                "next_send_at": clock.next_send_at(schedule, now),
            }
        spec = row.spec
        records.append(
            {
                "public_id": new_public_id(),
                "email": spec.email,
                "email_key": email_key(spec.email),
                "name": spec.name,
                "language": spec.language,
                "format": spec.format or MailFormat.html,
                "status": SubscriberStatus.active,
                "created_at": now,
                "updated_at": now,
                **rhythm,
            }
        )
    # Each table's rows written at once (`_write_table`), and the new ids read back by
    # address in one SELECT: an INSERT ... RETURNING of many rows is one statement of
    # thousands of parameters, which psycopg rewrites for PostgreSQL at some 300 µs a row.
    subscribers = Subscriber.__table__
    _write_table(session, subscribers, records)
    keys = [record["email_key"] for record in records]
    ids = dict(
        session.execute(
            select(subscribers.c.email_key, subscribers.c.id).where(
                one_of(session, subscribers.c.email_key, keys)
            )
        ).all()
    )
    topics, follows, events = [], [], []
    named: dict[tuple[Topic, ...], tuple[list[int], str]] = {}
    for (row, _schedule), key in zip(new, keys, strict=True):
        subscriber_id = ids[key]
        chosen = tuple(row.topics)
        if chosen not in named:
            named[chosen] = ([t.id for t in chosen], ", ".join(t.name for t in chosen))
        topic_ids, detail = named[chosen]
        topics.extend({"subscriber_id": subscriber_id, "topic_id": t} for t in topic_ids)
        # A microsecond apart: a reader's follows are listed in the order they were written.
        for order, (name_key, name) in enumerate(followed_names(row.spec.follows or ()).items()):
            follows.append(
                {
                    "subscriber_id": subscriber_id,
                    "name_key": name_key,
                    "name": name,
                    "created_at": now + timedelta(microseconds=order),
                }
            )
        events.append(_event(subscriber_id, "subscribed", detail, now))
    _write_table(session, Follow.__table__, follows)
    _write_table(session, Event.__table__, events)
    # Last, as the one whose answer takes longest: its foreign keys are checked a row at a time.
    return _send_table(session, SubscriberTopic.__table__, topics)


def _write_table(session: Session, table: Table, records: list[dict]) -> None:
    """`_send_table`, and its answer waited for."""
    _send_table(session, table, records)()


def _answered() -> None:
    """The answer to rows written at once (SQLite's executemany, or none at all)."""


def _send_table(session: Session, table: Table, records: list[dict]) -> Callable[[], None]:
    """Insert these records (all with the same keys) into the table, as the table's own INSERT
    would, at a fraction of its cost a row: each distinct value is converted for the database
    once (the model's own conversion: the dates and enums of a chunk are a handful), then the
    rows go to the driver as they are: on PostgreSQL as one COPY, which the server takes
    in as one statement rather than one INSERT a row; elsewhere as one executemany.

    What is returned waits for the database's answer: on PostgreSQL the COPY's rows are all
    sent and its answer is not read till then (nothing else may use the connection before);
    elsewhere it has been had already. A row the database refuses fails the whole of it, as an
    INSERT's would, with the same SQLAlchemy error (IntegrityError, DataError), so the chunk's
    savepoint is undone and its rows are written again one by one (`_write_chunk`)."""
    if not records:
        return _answered
    connection = session.connection()
    dialect = connection.dialect
    given = records[0].keys()
    names, columns = [], []
    for column in table.columns:
        if column.name in given:
            values = [record[column.name] for record in records]
        elif column.default is not None:
            # Its model's default, as the INSERT gives it: a constant (what a function makes,
            # a time or an id, is each record's own to give).
            assert column.default.is_scalar, f"{column.name} is each record's to give"
            values = [column.default.arg] * len(records)
        else:
            continue
        convert = column.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            # Each value converted once: the times, enums and flags of a chunk are a handful
            # of objects, each met over and over; known by identity (all of them alive in
            # `values`), since an enum's own hash is Python code.
            distinct = {id(value): value for value in values}
            converted = {key: convert(value) for key, value in distinct.items()}
            values = list(map(converted.__getitem__, map(id, values)))
        names.append(column.name)
        columns.append(values)
    rows = list(zip(*columns, strict=True))
    if dialect.name != "postgresql":
        # The table's own INSERT, compiled once, its parameters in the columns' order.
        statement = insert(table).compile(dialect=dialect, column_keys=names)
        assert statement.positiontup == names
        connection.exec_driver_sql(statement.string, rows)
        return _answered
    from newsletter.store.copy import copy_unanswered  # psycopg: PostgreSQL's only

    preparer = dialect.identifier_preparer
    quoted = ", ".join(preparer.quote(name) for name in names)
    statement = f"COPY {preparer.format_table(table)} ({quoted}) FROM STDIN"
    return copy_unanswered(connection.connection.driver_connection, statement, rows)


def _event(subscriber_id: int, kind: str, detail: str, at: datetime) -> dict:
    # Written in bulk, without `log_event`: no webhook asks to be told of this kind.
    assert kind not in SUBSCRIBER_EVENTS
    return {
        "subscriber_id": subscriber_id,
        "kind": kind,
        "source": "import",
        "detail": detail,
        "at": at,
    }
