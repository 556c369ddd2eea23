"""Each reader's rhythm: daily or weekly, at their local hour, in their zone, exactly once.

The first tests check `schedules.next_send` over a whole year in four zones (a half-hour
offset, and both daylight-saving changes in each hemisphere). The simulation then runs the
real serving (`daily.serve.serve_due`, what the worker runs every quarter hour) and the real
daily build on a controllable clock through the weeks around every daylight-saving change of
2026 in Pacific/Auckland, America/New_York and Europe/Berlin (and Asia/Kolkata, which has
none), with a daily job every day, and checks against an oracle that knows only when papers
arrived and when each reader was served: each reader gets their digests at their hour, on
their day, none twice, none missing, and each digest holds exactly the papers that arrived
since their previous one (a cadence change included).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from newsletter import store
from newsletter.config import get_settings
from newsletter.daily import fetch
from newsletter.daily.send import build_daily
from newsletter.daily.serve import serve_due
from newsletter.db import session_scope
from newsletter.intake.rhythm import SendClock
from newsletter.models import Delivery, Digest, DigestKind, Subscriber, SubscriberTopic
from newsletter.schedules import Schedule, next_send, weekday_named, zone_named
from tests.helpers import paper, set_env, topic_id

ZONES = ("Pacific/Auckland", "Asia/Kolkata", "America/New_York", "Europe/Berlin")
SIX = time(6)
CLOCK = SendClock("UTC", "06:00")
"""The list's zone and daily time in these tests (the settings' defaults)."""


def local_days(zone: ZoneInfo, schedule: Schedule, start: datetime, count: int) -> list[datetime]:
    instants, moment = [], start
    for _ in range(count):
        moment = CLOCK.next_send_at(schedule, moment)
        instants.append(moment)
    return instants


def hour_exists(day: date, hour: int, zone: ZoneInfo) -> bool:
    """Whether the wall time `hour`:00 happens on `day` in `zone` (not in a spring-forward gap)."""
    wall = datetime.combine(day, time(hour), tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None)


def at_their_hour(moment: datetime, zone: ZoneInfo, hour: int) -> bool:
    """`moment` is the reader's hour on its local day: that wall time, or, on the day it does
    not exist, the wall time it becomes after the jump (an hour later)."""
    local = moment.astimezone(zone)
    if local.minute or local.second:
        return False
    if hour_exists(local.date(), hour, zone):
        return local.hour == hour
    return local.hour == hour + 1


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize("hour", [0, 1, 2, 3, 7, 23])
def test_a_daily_hour_comes_once_each_local_day_all_year(zone_name, hour):
    zone = ZoneInfo(zone_name)
    start = datetime(2026, 1, 1, tzinfo=zone).astimezone(UTC)
    instants = local_days(zone, Schedule("daily", hour, None, zone_name), start, 365)
    days = [moment.astimezone(zone).date() for moment in instants]
    assert days == [days[0] + timedelta(days=n) for n in range(365)]  # each day once, in order
    assert all(at_their_hour(moment, zone, hour) for moment in instants)
    assert instants == sorted(set(instants))


@pytest.mark.parametrize("zone_name", ZONES)
def test_a_weekly_hour_comes_once_a_week_on_its_day_all_year(zone_name):
    zone = ZoneInfo(zone_name)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sunday = weekday_named("sun")
    instants = local_days(zone, Schedule("weekly", 2, sunday, zone_name), start, 52)
    assert {moment.astimezone(zone).weekday() for moment in instants} == {sunday}
    gaps = {(b.astimezone(zone).date() - a.astimezone(zone).date()).days
            for a, b in zip(instants, instants[1:], strict=False)}  # fmt: skip
    assert gaps == {7}
    assert all(at_their_hour(moment, zone, 2) for moment in instants)


def test_the_repeated_hour_of_a_fall_back_night_is_taken_once_the_first_time():
    berlin = ZoneInfo("Europe/Berlin")  # 2026-10-25: 03:00 CEST becomes 02:00 CET
    schedule = Schedule("daily", 2, None, "Europe/Berlin")
    first = CLOCK.next_send_at(schedule, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert first == datetime(2026, 10, 25, 0, tzinfo=UTC)  # 02:00 CEST, the first 02:00
    after = CLOCK.next_send_at(schedule, first)
    assert after.astimezone(berlin).date() == date(2026, 10, 26)  # not the second 02:00


def test_a_weekly_reader_without_an_hour_comes_at_the_daily_time_of_the_list():
    schedule = Schedule("weekly", None, weekday_named("wednesday"), "Asia/Kolkata")
    due = next_send(schedule, datetime(2026, 12, 4, tzinfo=UTC), default_zone="Europe/Berlin",
                    default_time=SIX)  # fmt: skip
    assert due == datetime(2026, 12, 9, 5, tzinfo=UTC)  # Wednesday 06:00 in Berlin


def test_a_daily_reader_without_an_hour_has_no_due_time():
    assert CLOCK.next_send_at(Schedule(), datetime.now(UTC)) is None


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", " Europe/Berlin"])
def test_a_zone_that_is_not_iana_is_refused_by_name(name):
    with pytest.raises(ValueError, match="is not an IANA time zone"):
        zone_named(name)


# --------------------------------------------------------------------------- the simulation

PERIODS = [  # (first moment, last moment), UTC; the clock jumps between them
    (datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 3, 12, tzinfo=UTC)),  # New York springs
    (datetime(2026, 3, 26, tzinfo=UTC), datetime(2026, 4, 9, tzinfo=UTC)),  # Berlin; Auckland falls
    (datetime(2026, 9, 24, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)),  # Auckland springs
    (datetime(2026, 10, 22, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)),  # Berlin; New York
]
RESUMED = {first for first, _last in PERIODS[1:]}
BUILD_HOUR = 1
"""The daily job's hour, UTC (after arXiv's announcement); every day, so that each change of
clocks (a Sunday) has a digest to send."""
QUARTER = timedelta(minutes=15)


@dataclass
class Reader:
    email: str
    zone: str
    cadence: str
    hour: int | None
    day: int | None = None
    id: int = 0

    def schedule(self) -> Schedule:
        return Schedule(self.cadence, self.hour, self.day, self.zone)


def readers() -> list[Reader]:
    found = []
    for zone in ZONES:
        key = zone.split("/")[1].lower()
        found += [
            Reader(f"{key}-daily-2@example.org", zone, "daily", 2),  # the gap, the repeat
            Reader(f"{key}-daily-1@example.org", zone, "daily", 1),  # New York's repeat
            Reader(f"{key}-daily-7@example.org", zone, "daily", 7),
            Reader(f"{key}-weekly-sun-2@example.org", zone, "weekly", 2, weekday_named("sun")),
            Reader(f"{key}-changes@example.org", zone, "daily", 7),  # weekly, then daily again
        ]
    found.append(Reader("asbuilt@example.org", "UTC", "daily", None))  # with each build
    return found


CHANGES = {
    datetime(2026, 3, 30, 12, tzinfo=UTC): ("weekly", 7, weekday_named("wed")),
    datetime(2026, 10, 27, 12, tzinfo=UTC): ("daily", 7, None),
}
"""When the "changes" readers change their rhythm, and to what."""


def add_readers(settings, people: list[Reader], now: datetime) -> None:
    slam = topic_id(settings, "SLAM")
    with session_scope(settings) as session:
        for person in people:
            subscriber = Subscriber(
                email=person.email,
                email_key=person.email,
                cadence=person.cadence,
                send_hour=person.hour,
                send_day=person.day,
                timezone=person.zone,
                next_send_at=CLOCK.next_send_at(person.schedule(), now),  # fmt: skip
            )
            session.add(subscriber)
            session.flush()
            session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=slam))
            person.id = subscriber.id


def change_rhythm(settings, person: Reader, now: datetime, cadence, hour, day) -> None:
    """What every intake path does: the rhythm and the next due time change; where the
    reader's window ends does not."""
    person.cadence, person.hour, person.day = cadence, hour, day
    due = CLOCK.next_send_at(person.schedule(), now)
    with session_scope(settings) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == person.id)
            .values(cadence=cadence, send_hour=hour, send_day=day, next_send_at=due)
        )


@dataclass
class Sent:
    at: datetime
    digest_id: int
    papers: frozenset[str]


def run_the_clock(settings, people: list[Reader]):
    """Step the clock through the periods a quarter hour at a time, as the worker wakes: the
    daily job at its hour (new papers, then the build), the serving every quarter. What each
    reader was sent, when; when each paper arrived.

    The quarters when nobody is due are skipped (the clock moves to the next quarter some
    reader is due at, the next build or the next change of rhythm): serving then would find
    nobody, as the worker's query does."""
    slam = topic_id(settings, "SLAM")
    arrived: dict[str, datetime] = {}
    sent: dict[int, list[Sent]] = defaultdict(list)
    last_row, number = 0, 0
    for first, last in PERIODS:
        moment = first
        while moment <= last:
            for change_at, rhythm in CHANGES.items():
                if moment - QUARTER < change_at <= moment:
                    for person in people:
                        if person.email.endswith("changes@example.org"):
                            change_rhythm(settings, person, moment, *rhythm)
            # A daily job every day but the period's last (whose digest would have no whole
            # day of readers' hours left in the period).
            if moment.hour == BUILD_HOUR and moment.minute == 0 and last - moment > timedelta(1):
                number += 2
                fresh = [paper(number - 1), paper(number)]
                fetch.save_fetched(settings, slam, fresh, now=moment - timedelta(minutes=5))
                arrived.update((p.arxiv_id, moment) for p in fresh)
                build_daily(settings, moment.date(), now=moment)
            if serve_due(settings, moment).rows:
                last_row = record_new_rows(settings, last_row, moment, sent)
            moment = next_moment(settings, moment, last)
    return arrived, sent


def next_moment(settings, moment: datetime, last: datetime) -> datetime:
    """The next quarter at which something can happen: a reader due, a build, a change."""
    with session_scope(settings) as session:
        due = session.scalar(select(func.min(Subscriber.next_send_at)))
    build = moment.replace(hour=BUILD_HOUR, minute=0) + timedelta(days=1)
    if moment.hour < BUILD_HOUR:
        build -= timedelta(days=1)
    candidates = [build, last + QUARTER, *(at for at in CHANGES if at > moment)]
    if due is not None:
        candidates.append(max(due, moment + QUARTER))
    upcoming = min(candidates)
    quarters = -(-(upcoming - moment) // QUARTER)  # up to the next whole quarter
    return moment + quarters * QUARTER


def record_new_rows(settings, last_row: int, moment: datetime, sent) -> int:
    with session_scope(settings) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.subscriber_id, Digest)
            .join(Digest, Digest.id == Delivery.digest_id)
            .where(Delivery.id > last_row)
            .order_by(Delivery.id)
        ).all()
        for row_id, subscriber_id, digest in rows:
            papers = store.papers_of_topics_between(
                session, [topic_id(settings, "SLAM")], digest.window_start, digest.window_end
            )
            shown = frozenset(p.arxiv_id for _topic, p in papers)
            sent[subscriber_id].append(Sent(moment, digest.id, shown))
            last_row = row_id
    return last_row


@pytest.fixture
def simulated(settings, cli, monkeypatch):
    set_env(monkeypatch, send_days="mon,tue,wed,thu,fri,sat,sun", digest_max_per_topic="50")
    cli("topics", "add", "SLAM", "--keyword", "slam")
    people = readers()
    add_readers(settings, people, PERIODS[0][0])
    arrived, sent = run_the_clock(settings, people)
    return people, arrived, sent


def test_a_year_of_daylight_saving_changes_on_a_controllable_clock(settings, simulated):
    """One simulation (it takes a while), three findings."""
    each_paper_once_at_their_hour(*simulated)
    one_digest_a_local_day_and_the_changes_of_clocks_once(*simulated)
    weekly_spans_shared_by_everyone_with_that_window(settings, *simulated)


def each_paper_once_at_their_hour(people, arrived, sent):
    builds = sorted(set(arrived.values()))
    for person in people:
        mine = sent[person.id]
        assert mine, person.email
        zone = ZoneInfo(person.zone)
        seen: list[str] = []
        previous: datetime | None = None
        for message in mine:
            local = message.at.astimezone(zone)
            cadence, hour, day = rhythm_at(person, message.at)
            what = f"{person.email} at {local.isoformat()}"
            if message.at in RESUMED:
                # The clock jumped here (a worker down for months): a reader whose hour came
                # meanwhile with news waiting is served on its return, once, then at their hour.
                assert cadence == "weekly", what
            elif hour is None:
                assert message.at in builds, what  # sent as the digest was built
            else:
                assert at_their_hour(message.at, zone, hour), what
                assert cadence == "daily" or local.weekday() == day, what
            # The oracle: exactly the papers that arrived since this reader's previous digest
            # (a first digest: the newest build's, or a weekly reader's last week).
            if previous is None:
                since = (message.at - timedelta(days=7) if cadence == "weekly"
                         else max(b for b in builds if b <= message.at) - QUARTER)  # fmt: skip
            else:
                since = previous
            expected = {i for i, at in arrived.items() if since < at <= message.at}
            assert message.papers == expected, what
            seen += message.papers
            previous = message.at
        assert len(seen) == len(set(seen)), f"{person.email} got a paper twice"
        # None missing: every paper that arrived from their first digest to their last
        # reached them.
        first = min(arrived[i] for i in mine[0].papers)
        every = {i for i, at in arrived.items() if first <= at <= mine[-1].at}
        assert set(seen) == every, person.email


def rhythm_at(person: Reader, moment: datetime) -> tuple[str, int | None, int | None]:
    """The rhythm a reader had at `moment` (the "changes" readers change theirs)."""
    if not person.email.endswith("changes@example.org"):
        return person.cadence, person.hour, person.day
    rhythm = ("daily", 7, None)
    for change_at, new in sorted(CHANGES.items()):
        if change_at <= moment:
            rhythm = new
    return rhythm


def one_digest_a_local_day_and_the_changes_of_clocks_once(people, arrived, sent):
    for person in people:
        zone = ZoneInfo(person.zone)
        days = [message.at.astimezone(zone).date() for message in sent[person.id]]
        assert len(days) == len(set(days)), f"{person.email}: two digests one local day"
    # The nights the clocks change, each reader of the hour that is missing or repeated got
    # exactly one digest that local day, at the wall time the rule says.
    nights = {
        ("America/New_York", 2, date(2026, 3, 8)): time(3),  # 02:00 does not exist: 03:00
        ("Europe/Berlin", 2, date(2026, 3, 29)): time(3),
        ("Pacific/Auckland", 2, date(2026, 9, 27)): time(3),
        ("Europe/Berlin", 2, date(2026, 10, 25)): time(2),  # 02:00 happens twice: the first
        ("Pacific/Auckland", 2, date(2026, 4, 5)): time(2),
        ("America/New_York", 1, date(2026, 11, 1)): time(1),
    }
    for (zone_name, hour, day), wall in nights.items():
        zone = ZoneInfo(zone_name)
        person = next(p for p in people if p.zone == zone_name and p.cadence == "daily"
                      and p.hour == hour and "changes" not in p.email)  # fmt: skip
        that_day = [m.at for m in sent[person.id] if m.at.astimezone(zone).date() == day]
        assert len(that_day) == 1, (person.email, day, that_day)
        local = that_day[0].astimezone(zone)
        assert local.time() == wall, (person.email, local)
        if wall == time(2):  # the first of the two: still on summer time
            assert local.dst()


def weekly_spans_shared_by_everyone_with_that_window(settings, people, _arrived, sent):
    weekly = [p for p in people if p.cadence == "weekly" and "changes" not in p.email]
    with session_scope(settings) as session:
        kinds = dict(session.execute(select(Digest.id, Digest.kind)).all())
    for person in weekly:
        mine = sent[person.id]
        assert all(kinds[m.digest_id] == DigestKind.span for m in mine), person.email
        for first, last in PERIODS:
            on_time = [m.at for m in mine if first < m.at <= last]
            gaps = {
                (b - a) / timedelta(hours=1) for a, b in zip(on_time, on_time[1:], strict=False)
            }
            # A week apart; an hour more or less across a change of clocks.
            assert gaps <= {167, 168, 169}, (person.email, gaps)
    # Readers whose windows are equal (same previous end, same newest digest) share one span:
    # the spans are far fewer than the weekly messages.
    weekly_messages = sum(len(sent[p.id]) for p in weekly)
    spans = {m.digest_id for p in weekly for m in sent[p.id]}
    assert len(spans) < weekly_messages


# --------------------------------------------------------------------------- seen and sent


def reader_with(settings, email: str, **rhythm) -> int:
    """An active reader of SLAM with this rhythm (columns), due as `next_send` says from now."""
    person = Reader(email, rhythm.pop("timezone", "UTC"), rhythm.pop("cadence", "daily"),
                    rhythm.pop("hour", None), rhythm.pop("day", None))  # fmt: skip
    add_readers(settings, [person], datetime.now(UTC))
    if rhythm:
        with session_scope(settings) as session:
            session.execute(update(Subscriber).where(Subscriber.id == person.id).values(**rhythm))
    return person.id


@pytest.fixture
def slam(settings, cli, monkeypatch):
    set_env(monkeypatch, outbox_dir=str(settings.var_dir.parent / "outbox"))
    cli("topics", "add", "SLAM", "--keyword", "slam")
    return topic_id(settings, "SLAM")


def test_status_shows_the_next_sends_by_time_and_cadence(settings, cli, slam):
    reader_with(settings, "a@example.org", hour=7, timezone="Asia/Kolkata")
    reader_with(settings, "b@example.org", hour=7, timezone="Asia/Kolkata")
    reader_with(settings, "c@example.org", cadence="weekly", day=0, hour=7,
                timezone="Asia/Shanghai")  # fmt: skip
    reader_with(settings, "d@example.org")  # daily, as soon as built
    output = cli("status").output
    kolkata = CLOCK.next_send_at(Schedule("daily", 7, None, "Asia/Kolkata"))
    shanghai = CLOCK.next_send_at(Schedule("weekly", 7, 0, "Asia/Shanghai"))
    lines = output.splitlines()
    assert any(f"{kolkata:%Y-%m-%d %a %H:%M}" in line and "daily" in line and " 2 " in f"{line} "
               for line in lines), output  # fmt: skip
    assert any(f"{shanghai:%Y-%m-%d %a %H:%M}" in line and "weekly" in line for line in lines)
    assert any("with each daily digest" in line and "daily" in line for line in lines), output
    assert f"{kolkata:%H:%M}".endswith(":30")  # 07:00 in Kolkata is half past, UTC


def test_preview_shows_a_text_reader_s_next_weekly_email_as_it_will_be_sent(settings, cli, slam):
    now = datetime.now(UTC)
    fetch.save_fetched(settings, slam, [paper(1)], now=now - timedelta(days=9))
    build_daily(settings, (now - timedelta(days=9)).date(), now=now - timedelta(days=9))
    fetch.save_fetched(settings, slam, [paper(2)], now=now - timedelta(days=2))
    build_daily(settings, (now - timedelta(days=2)).date(), now=now - timedelta(days=2))
    fetch.save_fetched(settings, slam, [paper(3, "Arrived after the last build")],
                       now=now - timedelta(hours=1))  # fmt: skip
    with session_scope(settings) as session:
        first = store.digest_on(session, (now - timedelta(days=9)).date())
        through = first.window_end  # their previous digest was the first one
    reader_with(settings, "weekly@example.org", cadence="weekly", day=0, hour=7,
                timezone="Asia/Shanghai", format="text", delivered_through=through)  # fmt: skip

    output = cli("preview", "--subscriber", "weekly@example.org").output

    path = Path(output.split("Wrote ", 1)[1].split()[0])
    assert path.suffix == ".txt"
    text = path.read_text()
    assert "<html" not in text.lower()
    assert "Paper number 2" in text and "Arrived after the last build" in text
    assert "Paper number 1" not in text  # in their previous digest
    assert "Goes out weekly on Monday at 07:00 Asia/Shanghai: next on" in output
    assert f"to {settings.today().isoformat()}" in output  # the subject of a span: "since"


def test_a_weekly_reader_s_span_is_sent_once_with_its_own_message_id_and_web_version(
    settings, cli, slam, monkeypatch
):
    """Delivered for real (the outbox): the span's message says which days it covers, links
    a web version of its own, and a reader sent the day's digest and a span the same day gets
    two different Message-IDs."""
    from newsletter.daily.send import send
    from tests.helpers import outbox_texts

    settings = get_settings()  # with the outbox `slam` set
    start = datetime.now(UTC) - timedelta(days=3)
    daily = reader_with(settings, "daily@example.org")
    weekly = reader_with(settings, "weekly@example.org", cadence="weekly", day=0, hour=7)
    fetch.save_fetched(settings, slam, [paper(1)], now=start)
    build_daily(settings, start.date(), now=start)
    serve_due(settings, start)  # the daily reader gets the first day
    fetch.save_fetched(settings, slam, [paper(2)], now=start + timedelta(days=1))
    with session_scope(settings) as session:  # the weekly reader's day has come
        session.execute(update(Subscriber).where(Subscriber.id == weekly)
                        .values(next_send_at=start))  # fmt: skip

    report = send(settings)

    texts = outbox_texts()
    assert set(texts) == {"daily@example.org", "weekly@example.org"}
    assert "Paper number 2" in texts["daily@example.org"]
    assert "Paper number 1" not in texts["daily@example.org"]  # sent the first day
    assert "Paper number 1" in texts["weekly@example.org"]  # a week's: both
    assert "Paper number 2" in texts["weekly@example.org"]
    with session_scope(settings) as session:
        rows = session.execute(select(Delivery.subscriber_id, Delivery.message_id, Digest)
                               .join(Digest, Digest.id == Delivery.digest_id)).all()  # fmt: skip
    span = next(d for s, _m, d in rows if s == weekly)
    assert span.kind == DigestKind.span
    assert f"/digests/span-{span.id}/for/" in texts["weekly@example.org"]
    assert len({m for _s, m, _d in rows}) == len(rows) == 3  # no two rows share a Message-ID
    assert report.sent == 2
    page = cli_web_get(settings, f"/digests/span-{span.id}")
    assert "Paper number 1" in page and "Paper number 2" in page
    assert cli_web_status(settings, "/digests/span-99999") == 404
    assert daily != weekly


def cli_web_get(settings, path: str) -> str:
    from newsletter.web import create_app

    response = create_app().test_client().get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def cli_web_status(settings, path: str) -> int:
    from newsletter.web import create_app

    return create_app().test_client().get(path).status_code


def test_a_real_worker_on_redis_serves_the_readers_whose_hour_has_come(
    settings, cli, slam, monkeypatch, redis_url, tmp_path
):
    """The worker path: `serve_readers` (what the scheduler queues every quarter hour) taken
    from Redis by a real `newsletter worker`, which gives the due readers their rows and
    delivers them, and leaves the others for their hour."""
    import os
    import subprocess

    from tests.helpers import (
        load_tasks,
        outbox_texts,
        read,
        stop,
        tasks_on_redis,
        wait_for,
        worker_command,
    )

    settings = get_settings()
    now = datetime.now(UTC)
    fetch.save_fetched(settings, slam, [paper(1)], now=now - timedelta(hours=2))
    build_daily(settings, now.date(), now=now - timedelta(hours=1))
    due = reader_with(settings, "due@example.org", hour=7, timezone="Asia/Kolkata")
    reader_with(settings, "later@example.org", hour=7, timezone="Asia/Kolkata")
    with session_scope(settings) as session:  # Kolkata's 07:00 has just come for one of them
        session.execute(update(Subscriber).where(Subscriber.id == due)
                        .values(next_send_at=now - timedelta(minutes=1)))  # fmt: skip
    with tasks_on_redis(redis_url, monkeypatch) as tasks:
        tasks.huey.flush()
        log = tmp_path / "worker.log"
        with log.open("wb") as output:
            worker = subprocess.Popen([*worker_command(), "--no-periodic"], cwd=tmp_path,
                                      env=dict(os.environ), stdout=output,
                                      stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for(lambda: "Huey consumer started" in read(log), worker, log, "start")
            tasks.serve_readers()
            outbox = Path(settings.outbox_dir)
            wait_for(lambda: len(list(outbox.glob("*.eml"))) == 1, worker, log, "one .eml")
        finally:
            assert stop(worker) == 0, read(log)
    assert set(outbox_texts()) == {"due@example.org"}
    with session_scope(settings) as session:
        due_next = session.get(Subscriber, due).next_send_at
    kolkata = due_next.astimezone(ZoneInfo("Asia/Kolkata"))
    assert (kolkata.hour, kolkata.minute) == (7, 0) and due_next > now
    load_tasks()


def test_a_window_that_fails_leaves_its_readers_for_the_next_serving_and_no_one_else(
    settings, cli, slam, monkeypatch, caplog
):
    """The weekly readers' span fails to build (a fault injected in its ranking): the daily
    readers are served all the same; the weekly reader is not moved on, and the next serving,
    the fault gone, gives them their span."""
    from newsletter.daily import serve as serving

    now = datetime.now(UTC)
    fetch.save_fetched(settings, slam, [paper(1)], now=now - timedelta(days=3))
    build_daily(settings, (now - timedelta(days=3)).date(), now=now - timedelta(days=3))
    fetch.save_fetched(settings, slam, [paper(2)], now=now - timedelta(hours=2))
    build_daily(settings, now.date(), now=now - timedelta(hours=1))
    with session_scope(settings) as session:
        first = store.digest_on(session, (now - timedelta(days=3)).date()).window_end
    daily = reader_with(settings, "daily@example.org", delivered_through=first)
    weekly = reader_with(
        settings, "weekly@example.org", cadence="weekly", day=0, hour=7,
        next_send_at=now - timedelta(minutes=1), delivered_through=None,
    )  # fmt: skip
    real = serving.rank_digest

    def failing(settings, digest_id, **options):
        if options.get("only") is not None:
            raise RuntimeError("injected: the span's ranking failed")
        return real(settings, digest_id, **options)

    monkeypatch.setattr(serving, "rank_digest", failing)
    report = serve_due(settings, now)
    assert (report.given, report.failed) == (1, 1)
    assert "injected: the span's ranking failed" in caplog.text
    with session_scope(settings) as session:
        assert session.get(Subscriber, weekly).delivered_through is None  # not moved on
        assert session.get(Subscriber, daily).delivered_through is not None

    monkeypatch.setattr(serving, "rank_digest", real)
    again = serve_due(settings, now + QUARTER)
    assert (again.given, again.failed) == (1, 0)
    with session_scope(settings) as session:
        rows = session.execute(select(Delivery.subscriber_id)).scalars().all()
    assert sorted(rows) == sorted([daily, weekly])


def test_readers_are_given_their_rows_in_chunks_and_a_chunk_that_fails_leaves_only_its_own(
    settings, cli, slam, monkeypatch, caplog
):
    """Serving commits readers and their delivery rows INSERT_CHUNK at a time and tells `on_rows`
    of each chunk (a worker queues their delivery at once, see `tasks.QueuedAsWritten`). A
    chunk that fails is rolled back alone: the readers of the chunks before keep their rows,
    the rest are due at the next serving, and every reader ends with one row and one email."""
    from newsletter.daily import serve as serving
    from newsletter.delivery.deliverer import deliver_all
    from newsletter.delivery.transports import transport_from_settings

    monkeypatch.setattr(serving, "INSERT_CHUNK", 4)
    now = datetime.now(UTC)
    fetch.save_fetched(settings, slam, [paper(1)], now=now - timedelta(hours=2))
    build_daily(settings, now.date(), now=now - timedelta(hours=1))
    people = [reader_with(settings, f"r{number}@example.org") for number in range(10)]
    real, calls = store.add_deliveries, []

    def third_fails(session, digest_id, created_at, rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("injected: the third chunk's rows could not be written")
        return real(session, digest_id, created_at, rows)

    monkeypatch.setattr(store, "add_deliveries", third_fails)
    told: list[tuple[int, int]] = []
    report = serve_due(settings, now, on_rows=lambda digest, rows: told.append((digest, rows)))
    (digest_id,) = {digest for digest, _rows in told}
    assert [rows for _digest, rows in told] == [4, 4]  # told as each chunk was committed
    assert (report.given, report.rows, report.failed) == (8, 8, 2)
    assert "injected" in caplog.text

    monkeypatch.setattr(store, "add_deliveries", real)
    told.clear()
    again = serve_due(settings, now + QUARTER, on_rows=lambda digest, rows: told.append(rows))
    assert (again.given, again.rows, again.failed, told) == (2, 2, 0, [2])
    with session_scope(settings) as session:
        rows = session.execute(select(Delivery.subscriber_id)).scalars().all()
    assert sorted(rows) == sorted(people)

    transport = transport_from_settings(settings)
    assert deliver_all(settings, digest_id, transport).sent == 10
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 10


def test_rows_a_digest_has_already_are_not_written_again_and_not_counted(settings, slam):
    """`add_deliveries` leaves a reader who has a row for the digest alone (the unique
    constraint skips them, no look-up first) and counts only the rows it wrote."""
    now = datetime.now(UTC)
    fetch.save_fetched(settings, slam, [paper(1)], now=now - timedelta(hours=2))
    digest_id = build_daily(settings, now.date(), now=now - timedelta(hours=1))[0].digest_id
    people = [reader_with(settings, f"r{number}@example.org") for number in range(4)]
    with session_scope(settings) as session:
        first = [(sid, f"<first-{sid}@example.org>", 1) for sid in people[:2]]
        assert store.add_deliveries(session, digest_id, now, first) == 2
    with session_scope(settings) as session:
        every = [(sid, f"<again-{sid}@example.org>", 1) for sid in people]
        assert store.add_deliveries(session, digest_id, now, every) == 2
        assert store.add_deliveries(session, digest_id, now, every) == 0
        rows = dict(session.execute(select(Delivery.subscriber_id, Delivery.message_id)).all())
    assert rows == {sid: f"<{'first' if sid in people[:2] else 'again'}-{sid}@example.org>"
                    for sid in people}  # fmt: skip
