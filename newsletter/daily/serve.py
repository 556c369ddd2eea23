"""Giving each due reader their digest: the window since their previous one, at their hour.

Papers are fetched and a daily digest built once for everyone (`send.build_daily`). Readers
are then served when they are due (`schedules`: their cadence, hour, weekday and zone): the
worker looks every minute, and the daily job right after each build (daily readers without an
hour are due then). A reader is given the window from the end of their previous one
(`Subscriber.delivered_through`) to the end of the newest ready daily digest: for most daily
readers that is exactly that digest; for a weekly reader, or one whose previous digest is older
(a cadence changed, a worker down for a day), a span of consecutive days is made once per
window and shared by everyone with that window. Readers of one window and one body share a
segment, as before: one render each.

Exactly once: moving a reader's `delivered_through` on (`store.give_window`, only where it
still holds what was read) and writing their delivery row happen in one transaction, so a
window goes to a reader once however many processes serve the same moment, and consecutive
windows neither overlap nor leave a gap, whatever the reader's cadence was.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from newsletter import store
from newsletter.batches import chunks
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery.events import mark_built
from newsletter.digest.edition import Edition, EditionOptions
from newsletter.digest.segments import Readers, Segment, segments_of
from newsletter.intake.rhythm import SendClock
from newsletter.message.compose import message_id_for
from newsletter.models import Cadence, Digest, Subscriber, utcnow
from newsletter.ranking.step import rank_digest
from newsletter.schedules import Schedule, zone_named
from newsletter.summarize.step import summarize_for_digest
from newsletter.translate.step import translate_for_digest

log = logging.getLogger(__name__)

MAX_SPAN = timedelta(days=14)
"""The oldest a window may start, before the newest digest's end: a reader back from a long
pause gets the last two weeks, not everything they missed (a change of cadence never reaches
this far)."""
FIRST_WEEK = timedelta(days=7)
"""A new weekly reader's first digest holds the last week's papers."""
INSERT_CHUNK = 1_000
"""Readers moved on and given their delivery rows per transaction (one INSERT)."""
RowsWritten = Callable[[int, int], None]
"""Told (digest id, rows) each time delivery rows are committed: they can be sent from then on."""

Claims = dict[tuple[datetime | None, datetime | None], list[int]]
"""Readers of one window by (the window end they were given before, their next due time)."""


@dataclass
class ServeReport:
    """What one serving did."""

    due: int = 0
    given: int = 0
    """Readers given a window (a delivery row, unless their topics had nothing)."""
    rows: int = 0
    """Delivery rows written: messages to send."""
    nothing_new: int = 0
    paused: int = 0
    failed: int = 0
    """Readers of a window that could not be given (logged): due again at the next serving."""
    spans: int = 0
    """Spans made or added readers to."""
    digests: dict[int, int] = field(default_factory=dict)
    """Delivery rows written, by digest: what to deliver now."""
    segments: list[Segment] = field(default_factory=list)

    def to_deliver(self, built: int | None = None) -> list[int]:
        """The digests to deliver: the one just `built` (when there is), then those readers
        were given rows of."""
        return list(dict.fromkeys([*([] if built is None else [built]), *self.digests]))

    def summary(self) -> str:
        return (
            f"{self.due} due: {self.given} given their window ({self.rows} messages to send,"
            f" {self.spans} span(s)), {self.nothing_new} with nothing new, {self.paused} paused"
            + (f", {self.failed} left for the next serving" if self.failed else "")
        )


def serve_due(
    settings: Settings,
    now: datetime | None = None,
    *,
    editions: dict[int, Edition] | None = None,
    on: date | None = None,
    streamed: Readers | None = None,
    on_rows: RowsWritten | None = None,
    among: tuple[int, int] | None = None,
) -> ServeReport:
    """Give every reader due at `now` (default: this moment) their window's delivery row;
    with `among` (first, last), only the due readers whose ids are in that range: a share of
    the serving that several processes do at once (`worker.tasks.serve_part`).

    A reader paused until a day later than their own today (`on`, when given: the day a
    `newsletter send --date` is for) is not given one. `streamed`: the newest digest's readers
    as the daily job streamed them, so that those given it now are not streamed again.

    `editions` are digests' editions a caller has read already (the daily job's, with its
    translation notes), by digest id; those read here are added to it, so that a process
    serving every quarter hour reads a span's papers once, not each time readers are given
    it (those of older windows are dropped).

    Readers are given their rows in chunks (see `_give`), `on_rows` told of each."""
    now = now or utcnow()
    report = ServeReport()
    with session_scope(settings) as session:
        latest = store.latest_ready_daily(session)
        if latest is None:
            return report
        due = store.due_readers(session, now, latest.window_end, among)
        if not due:
            return report
        bounds = _Bounds.read(session, latest, now)
        session.expunge_all()
    report.due = len(due)
    settings.secret()  # what every row needs (its Message-ID): unreadable, nobody is served
    editions = {} if editions is None else editions
    for digest_id in [d for d, e in editions.items() if e.digest.window_end != latest.window_end]:
        del editions[digest_id]  # an older window's: nobody is given it any more
    windows: dict[datetime | None, Claims] = defaultdict(lambda: defaultdict(list))
    rescheduled: dict[datetime, list[int]] = defaultdict(list)
    clock = SendClock.of(settings)
    for reader in due:
        schedule = Schedule(reader.cadence, reader.hour, reader.day, reader.timezone)
        try:
            upcoming = clock.next_send_at(schedule, now)
            zone = zone_named(reader.timezone or settings.timezone)
        except ValueError as error:  # checked on the way in: a zone since gone from tzdata
            log.error("serve: subscriber %d left out: %s", reader.id, error)
            continue
        today = on or now.astimezone(zone).date()
        if reader.paused_until is not None and reader.paused_until > today:
            report.paused += 1
        elif reader.delivered_through is not None and reader.delivered_through >= latest.window_end:
            report.nothing_new += 1
        else:
            start = bounds.start(reader.delivered_through, reader.cadence)
            windows[start][(reader.delivered_through, upcoming)].append(reader.id)
            continue
        if upcoming is not None:
            rescheduled[upcoming].append(reader.id)
    if rescheduled:
        with session_scope(settings) as session:
            for upcoming, ids in rescheduled.items():
                store.reschedule(session, ids, upcoming)
    for start, claims in windows.items():
        given_before = report.given
        try:
            if start == latest.window_start:
                edition = editions.get(latest.id)
                if edition is None:
                    edition = editions[latest.id] = _read_edition(settings, latest)
            else:
                edition = _span_edition(settings, start, latest, claims, now, report, editions)
            # The readers streamed by the build of this very digest (`on` its day): a stream
            # made for an older day (its build retried after the next day's was ready) has
            # that day's followed papers in its segments, so those readers are read again.
            fresh = streamed is not None and streamed.on == latest.issue_date
            known = streamed if fresh and edition.digest_id == latest.id else None
            _give(settings, edition, claims, report, known, on_rows)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the caller waits it out; those not moved are due
        except Exception:  # one window's failure is its readers' alone: the others go on
            # (those given before it failed have their rows)
            readers = sum(len(ids) for ids in claims.values()) - (report.given - given_before)
            report.failed += readers
            log.exception("serve: the window from %s: %d reader(s) left for the next serving",
                          start, readers)  # fmt: skip
    if report.given or report.failed:
        log.info("serve %s: %s", now.isoformat(timespec="minutes"), report.summary())
    return report


@dataclass(frozen=True)
class _Bounds:
    """Where windows may start, given the newest ready daily digest at a moment."""

    latest: Digest
    oldest: datetime | None
    """The earliest start: the start of the oldest daily digest within MAX_SPAN."""
    first_week: datetime | None
    """A new weekly reader's start: the start of the oldest daily digest of the last week."""

    @classmethod
    def read(cls, session: Session, latest: Digest, now: datetime) -> _Bounds:
        since = min(now - FIRST_WEEK, latest.window_end - MAX_SPAN)
        recent = store.daily_digests_ending_after(session, since)
        return cls(
            latest,
            _oldest_start(recent, latest, latest.window_end - MAX_SPAN),
            _oldest_start(recent, latest, now - FIRST_WEEK),
        )

    def start(self, through: datetime | None, cadence: str) -> datetime | None:
        """Where a due reader's window starts: where their previous one ended (no further back
        than MAX_SPAN); a new reader's is the newest digest's, a new weekly reader's a week's."""
        if through is None:
            return self.first_week if cadence == Cadence.weekly else self.latest.window_start
        if self.oldest is not None and through < self.oldest:
            return self.oldest
        return through


def _oldest_start(recent: list[Digest], latest: Digest, since: datetime) -> datetime | None:
    """The start of the oldest daily digest ending after `since` (a digest boundary)."""
    for digest in recent:
        if since < digest.window_end <= latest.window_end:
            return digest.window_start
    return latest.window_start


@dataclass(frozen=True)
class NextDigest:
    """What a reader's next digest will be, as far as is known now (`preview --subscriber`)."""

    start: datetime | None
    """Its window's start: the papers first seen since then (up to the next daily digest)."""
    spans_days: bool
    """It covers more than the newest daily digest (a weekly reader's, a late one's)."""
    due: datetime | None
    """When they are next due; None: as soon as the next daily digest is built."""
    schedule: Schedule


def next_digest(
    session: Session, settings: Settings, subscriber: Subscriber, now: datetime
) -> NextDigest:
    """Where a reader's next window starts and when it is due: the rule `serve_due` applies."""
    schedule = store.schedule_of(subscriber)
    due = subscriber.next_send_at or SendClock.of(settings).next_send_at(schedule, now)
    latest = store.latest_ready_daily(session)
    if latest is None:
        return NextDigest(None, False, due, schedule)
    start = _Bounds.read(session, latest, now).start(subscriber.delivered_through, schedule.cadence)
    if (
        subscriber.delivered_through is not None
        and subscriber.delivered_through >= latest.window_end
    ):
        start = latest.window_end  # given the newest already: what arrives next
    older = start is not None and latest.window_start is not None and start < latest.window_start
    return NextDigest(start, schedule.cadence == Cadence.weekly or older, due, schedule)


def _read_edition(settings: Settings, digest: Digest) -> Edition:
    with session_scope(settings) as session:
        return Edition.read(session, digest, EditionOptions.from_settings(settings))


def _span_edition(
    settings: Settings,
    start: datetime | None,
    latest: Digest,
    claims: Claims,
    now: datetime,
    report: ServeReport,
    editions: dict[int, Edition],
) -> Edition:
    """The span (start, latest's end], made on first need, ranked and translated for these
    readers (a span made earlier, for readers of an earlier hour, gets its new readers'); its
    edition as read before when there is one, its translations and rankings read again."""
    subscriber_ids = sorted(sid for ids in claims.values() for sid in ids)
    day = now.astimezone(settings.zone).date()
    with session_scope(settings) as session:
        span_id = store.open_span(session, start, latest.window_end, day).id
    report.spans += 1
    rank_digest(settings, span_id, only=set(subscriber_ids))
    with session_scope(settings) as session:
        if span_id not in editions:
            span = store.digest_by_id(session, span_id)
            editions[span_id] = Edition.read(session, span, EditionOptions.from_settings(settings))
        edition = editions[span_id].afresh()
        edition.has_rankings(session)
        readers = Readers.stream(session, date.max, edition=edition, subscriber_ids=subscriber_ids)
    translation = translate_for_digest(settings, edition, readers, None)
    summarize_for_digest(settings, edition, readers)  # within its own budget; logs failures
    with session_scope(settings) as session:
        mark_built(session, settings.base_url, span_id, utcnow())
    return edition.with_notes(translation.notes)


def _give(
    settings: Settings,
    edition: Edition,
    claims: Claims,
    report: ServeReport,
    streamed: Readers | None = None,
    on_rows: RowsWritten | None = None,
) -> None:
    """Move these readers on to the edition's window and write their delivery rows; readers
    another process moved meanwhile are left out. Readers `streamed` holds are not read again.

    Readers are given in chunks of INSERT_CHUNK, segment after segment, each chunk moved on and
    given its rows in one transaction (so a reader is moved on exactly when their row is
    written), then `on_rows(digest id, rows)`: a worker queues their delivery at once, and
    other workers send them while the rest are written. Readers whose topics have nothing
    new are moved on too, without a row."""
    end = edition.digest.window_end
    claim_of = {sid: claim for claim, ids in claims.items() for sid in ids}
    with session_scope(settings) as session:
        # Paused readers were left out by `serve_due`, in each reader's own today: none of
        # these is left out again (moved on without a row, their window would be lost).
        readers, unknown = Readers(date.max, {}), set(claim_of)
        if streamed is not None:
            readers, unknown = streamed.among(claim_of)
        if unknown:
            readers = readers.joined(
                Readers.stream(session, date.max, edition=edition, subscriber_ids=sorted(unknown))
            )
        segments = segments_of(session, edition, readers)
    report.segments += segments
    members = [(segment, sid) for segment in segments for sid in segment.subscriber_ids]
    with_rows = {sid for _segment, sid in members}
    # Readers whose topics have nothing new (or who follow none now): moved on, no row.
    members += [(None, sid) for sid in claim_of if sid not in with_rows]
    for chunk in chunks(members, INSERT_CHUNK):
        with session_scope(settings) as session:
            moving: dict[tuple, list[int]] = defaultdict(list)
            for _segment, sid in chunk:
                moving[claim_of[sid]].append(sid)
            given: dict[int, str] = {}  # public ids, by id, of the readers moved on
            for (had, upcoming), ids in moving.items():
                given.update(
                    store.give_window(session, ids, had=had, through=end, next_send_at=upcoming)
                )
            rows = write_rows(
                settings,
                session,
                edition,
                [(segment, sid) for segment, sid in chunk if segment is not None and sid in given],
                given,
            )
        report.given += len(given)
        report.rows += rows
        if rows:
            report.digests[edition.digest_id] = report.digests.get(edition.digest_id, 0) + rows
            if on_rows is not None:
                on_rows(edition.digest_id, rows)


def write_rows(
    settings: Settings,
    session: Session,
    edition: Edition,
    members: list[tuple[Segment, int]],
    public_ids: Mapping[int, str],
) -> int:
    """A delivery row for each of these (segment, reader) that has none for the digest yet, in
    the order given (segment after segment: a batch of claimed rows then spans few segments);
    the rows written. `public_ids`: the readers', by id (`store.give_window` read them)."""
    if not members:
        return 0
    secret, domain, key = settings.secret(), settings.sender_domain, edition.digest.path
    rows = [
        (
            subscriber_id,
            message_id_for(secret, key, public_ids[subscriber_id], domain),
            segment.content.paper_count,
        )
        for segment, subscriber_id in members
        if subscriber_id in public_ids
    ]
    return store.add_deliveries(session, edition.digest_id, datetime.now(UTC), rows)
