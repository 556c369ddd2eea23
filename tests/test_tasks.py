"""The Huey tasks: which queue, the daily task, its schedule, and a real `newsletter worker`.

The daily task runs against the local arXiv server and writes to the outbox (no SMTP URL set),
in immediate mode and in a real worker process that shares the SQLite queue with this one.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
import redis
from huey import RedisHuey, SqliteHuey
from sqlalchemy import select, update

from newsletter import store
from newsletter.config import Settings, get_settings
from newsletter.db import session_scope
from newsletter.models import Delivery
from tests.arxiv_server import ArxivServer, Reply
from tests.helpers import (
    PAPERS,
    WorkerProcess,
    add_subscribers,
    bounce_of,
    digests_sent,
    ended_sender,
    load_tasks,
    minutes_of,
    outbox_texts,
    paper,
    query_of,
    set_env,
    status_of,
    store_papers,
    tasks_on_redis,
)


@pytest.fixture
def tasks(settings: Settings) -> ModuleType:
    return load_tasks()


@pytest.fixture
def immediate(tasks: ModuleType) -> Iterator[ModuleType]:
    tasks.huey.immediate = True
    try:
        yield tasks
    finally:
        tasks.huey.immediate = False


def today() -> str:
    return datetime.now(UTC).date().isoformat()


# --------------------------------------------------------------------------- the queue


def test_the_queue_is_sqlite_under_the_var_folder_by_default(tasks, settings):
    assert isinstance(tasks.huey, SqliteHuey)
    assert tasks.huey.name == "newsletter"
    assert Path(tasks.huey.storage.filename) == settings.var_dir / "huey.db"
    assert (settings.var_dir / "huey.db").is_file()
    assert tasks.huey.utc  # the scheduler hands out UTC times


def test_tasks_are_queued_under_names_that_do_not_follow_the_code_around(tasks):
    """A task is queued as `newsletter.tasks.<function>`: what one version of the code queued
    or scheduled (a digest's retry, a delivery's successor) is run by the next, wherever the
    function lives now; a name Huey does not know is dropped from the queue."""
    for task in (tasks.daily_job, tasks.daily_digest, tasks.deliver, tasks.read_inbox):
        message = tasks.huey.serializer.deserialize(tasks.huey.serialize_task(task.s()))
        assert message.name == f"newsletter.tasks.{task.func.__name__}"
    queued_before = tasks.huey.serialize_task(tasks.deliver.s(7))
    task = tasks.huey.deserialize_task(queued_before)
    assert (task.name, task.args) == ("deliver", (7,))


def test_the_queue_is_redis_when_a_redis_url_is_set(settings, monkeypatch, redis_url):
    set_env(monkeypatch, redis_url=redis_url)
    tasks = load_tasks()
    huey = tasks.huey
    try:
        assert isinstance(huey, RedisHuey)
        wanted_db = int(redis_url.rsplit("/", 1)[1])
        assert huey.storage.conn.connection_pool.connection_kwargs["db"] == wanted_db
        huey.flush()

        tasks.daily_job()  # enqueued in Redis, not run: no worker listens here

        (queued,) = huey.pending()
        assert queued.name == "daily_job"
        assert not (settings.var_dir / "huey.db").exists()
    finally:
        huey.flush()
        huey.storage.conn.close()


# --------------------------------------------------------------------------- the daily task


def test_the_daily_task_fetches_builds_and_sends(immediate, arxiv, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.worker.tasks")
    summary = immediate.daily_job().get()

    assert summary == {"date": today(), "fetch_errors": 0}
    assert len(arxiv.requests) == 2
    (queued,) = [r.getMessage() for r in caplog.records if "queued its delivery" in r.getMessage()]
    assert f"'date': '{today()}'" in queued and "'batches': 1" in queued
    mail = outbox_texts()
    assert set(mail) == {"ada@example.org", "bo@example.org"}
    assert all(arxiv_id in mail["ada@example.org"] for arxiv_id in ("2611.00001", "2611.00002"))
    assert "2611.00002" in mail["bo@example.org"] and "2611.00001" not in mail["bo@example.org"]

    again = immediate.daily_job().get()  # safe to run twice: nothing is sent twice

    assert again == {"date": today(), "fetch_errors": 0}
    assert len(outbox_texts()) == 2
    assert len(list(Path(get_settings().outbox_dir).glob("*.eml"))) == 2


def test_the_daily_task_reports_a_topic_arxiv_failed_on(immediate, arxiv, caplog):
    arxiv.route_first(Reply.text("Rate exceeded.", status=503), search_query=query_of("Alpha"))

    summary = immediate.daily_job().get()

    assert summary["fetch_errors"] == 1
    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}
    assert any(
        record.levelname == "ERROR"
        and "topic 'Alpha'" in record.getMessage()
        and "Rate exceeded" in record.getMessage()
        for record in caplog.records
    )
    assert "2611.00001" not in outbox_texts()["ada@example.org"]


def test_the_scheduled_task_runs_the_daily_job(immediate, arxiv):
    immediate.scheduled_daily_job()

    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}


EVERY_FEW_MINUTES = ("serve_readers", "post_webhooks")
"""Periodic tasks the schedule tests leave out: the quarter-hourly serving of due readers (see
`test_due_readers_are_served_every_quarter_hour`) and the webhooks posted every minute (see
test_webhooks)."""


def scheduled_at(tasks: ModuleType, *moment: int) -> list[str]:
    """The periodic tasks the worker's scheduler would enqueue at this UTC time, but those of
    EVERY_FEW_MINUTES."""
    return [
        task.name
        for task in tasks.huey.read_periodic(datetime(*moment))
        if task.name not in EVERY_FEW_MINUTES
    ]


def test_due_readers_are_served_every_quarter_hour(tasks):
    """Every UTC offset in use is a whole quarter hour (Asia/Kolkata +5:30, Asia/Kathmandu
    +5:45), so a local hour always falls on one of these minutes."""
    assert minutes_of(tasks, "serve_readers") == [0, 15, 30, 45]


def test_the_schedule_follows_the_daily_time_setting(tasks, settings, monkeypatch):
    assert settings.daily_time == "06:00"
    assert scheduled_at(tasks, 2026, 11, 27, 6, 0) == ["scheduled_daily_job"]  # a Friday
    assert scheduled_at(tasks, 2026, 11, 27, 7, 0) == []

    set_env(monkeypatch, daily_time="17:30")

    assert scheduled_at(tasks, 2026, 11, 26, 17, 30) == ["scheduled_daily_job"]
    for hour, minute in [(6, 0), (17, 0), (18, 30), (17, 31)]:
        assert scheduled_at(tasks, 2026, 11, 26, hour, minute) == [], (hour, minute)


def test_no_digest_on_days_arxiv_announces_nothing(tasks, settings, monkeypatch):
    # 2026-11-28 is a Saturday, 2026-11-29 a Sunday, 2026-11-30 a Monday.
    assert scheduled_at(tasks, 2026, 11, 28, 6, 0) == []
    assert scheduled_at(tasks, 2026, 11, 29, 6, 0) == []
    assert scheduled_at(tasks, 2026, 11, 30, 6, 0) == ["scheduled_daily_job"]
    set_env(monkeypatch, send_days="mon,tue,wed,thu,fri,sat,sun")
    assert scheduled_at(tasks, 2026, 11, 28, 6, 0) == ["scheduled_daily_job"]


def test_the_daily_time_is_read_in_the_configured_time_zone(tasks, settings, monkeypatch):
    set_env(monkeypatch, daily_time="07:00", timezone="Asia/Shanghai")  # UTC+8, no DST
    assert scheduled_at(tasks, 2026, 11, 26, 23, 0) == ["scheduled_daily_job"]  # Fri 07:00 local
    assert scheduled_at(tasks, 2026, 11, 27, 7, 0) == []
    set_env(monkeypatch, daily_time="06:00", timezone="America/New_York")  # UTC-5 in November
    assert scheduled_at(tasks, 2026, 11, 27, 11, 0) == ["scheduled_daily_job"]


def test_bad_schedule_settings_say_what(settings, monkeypatch):
    for name, value, message in [
        ("NEWSLETTER_DAILY_TIME", "25:00", "NEWSLETTER_DAILY_TIME must be HH:MM"),
        ("NEWSLETTER_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("NEWSLETTER_SEND_DAYS", "mon,funday", "not days"),
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=message):
            Settings()
        monkeypatch.delenv(name)


# --------------------------------------------------------------------------- a real worker


def test_a_real_worker_runs_the_queued_daily_job(arxiv, settings, monkeypatch, tmp_path):
    # An hour away from now, so the scheduler's own run cannot join in.
    away = (datetime.now(UTC).hour + 12) % 24
    settings = set_env(monkeypatch, daily_time=f"{away:02d}:00")
    tasks = load_tasks()  # the same SQLite queue file as the worker's
    with WorkerProcess(tmp_path) as worker:
        result = tasks.daily_job()

        eml = Path(settings.outbox_dir)
        worker.wait_for(lambda: len(list(eml.glob("*.eml"))) == 2, "two .eml files")
        summary = result.get(blocking=True, timeout=30)
    code, text = worker.code, worker.output()

    assert summary == {"date": today(), "fetch_errors": 0}
    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}
    assert {request.search_query for request in arxiv.requests} == {
        query_of(name) for name in PAPERS
    }
    assert code == 0, text
    assert "Shutting down gracefully" in text and "Consumer exiting" in text
    assert "daily job queued its delivery" in text
    assert tasks.huey.pending_count() == 0


# --------------------------------------------------------------------------- hand-offs


def test_run_hands_the_job_to_the_workers_when_redis_is_set(cli, settings, monkeypatch, redis_url):
    cli("topics", "add", "SLAM", "-k", "slam")
    cli("subscribers", "add", "ada@example.org", "--topic", "SLAM")
    set_env(monkeypatch, redis_url=redis_url)
    tasks = load_tasks()
    tasks.huey.flush()
    try:
        result = cli("run")
        assert "queued for the workers" in result.output
        assert (
            "Warning: 1 task(s) waiting and no worker is alive: start `newsletter worker`"
            in result.output
        )
        assert tasks.huey.pending_count() == 1
        (queued,) = tasks.huey.pending()
        assert queued.name == "daily_job"
        assert not list(Path(get_settings().outbox_dir).glob("*.eml"))  # nothing ran here
    finally:
        tasks.huey.flush()


def test_run_inline_runs_here_even_with_workers(cli, arxiv, settings, monkeypatch, redis_url):
    set_env(monkeypatch, redis_url=redis_url)
    tasks = load_tasks()
    tasks.huey.flush()
    try:
        result = cli("run", "--inline")
        assert "2 sent" in result.output
        assert tasks.huey.pending_count() == 0
        assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}
    finally:
        tasks.huey.flush()


@contextmanager
def fetching_elsewhere() -> Iterator[subprocess.Popen]:
    """Another process holding the fetch lock, as a worker does while it fetches."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from newsletter.config import get_settings;"
            " from newsletter.worker.fetchlock import fetch_lock\n"
            "with fetch_lock(get_settings()):\n print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=10)


def only_one_fetch_and_none_kept_by_a_killed_worker(tasks: ModuleType, arxiv, released_within):
    from huey.exceptions import TaskLockedException

    with fetching_elsewhere() as holder:
        with pytest.raises(TaskLockedException):
            tasks.daily_job.call_local()
        assert arxiv.requests == []  # nothing was asked of arXiv meanwhile
        holder.send_signal(signal.SIGKILL)  # killed mid-fetch: no release of any kind
        holder.wait(timeout=10)
        deadline = time.monotonic() + released_within
        while True:
            try:
                tasks.daily_job.call_local()  # Huey's retry of the job goes through
                break
            except TaskLockedException:
                assert time.monotonic() < deadline, "the killed worker's lock was kept"
                time.sleep(0.1)
    assert len(arxiv.requests) == len(PAPERS)


def test_only_one_fetch_runs_at_a_time_and_a_killed_fetcher_keeps_no_lock(immediate, arxiv):
    # The embedded default: a file lock, released by the kernel when its process ends.
    only_one_fetch_and_none_kept_by_a_killed_worker(immediate, arxiv, released_within=1)


def test_on_redis_a_killed_fetcher_s_lock_lapses_within_three_heartbeats(
    arxiv, monkeypatch, redis_url
):
    set_env(monkeypatch, heartbeat_interval="0.5")
    with tasks_on_redis(redis_url, monkeypatch) as tasks:
        redis.Redis.from_url(redis_url).delete("newsletter:fetch-lock")
        tasks.huey.immediate = True  # the job runs here; the lock is still Redis'
        try:
            only_one_fetch_and_none_kept_by_a_killed_worker(tasks, arxiv, released_within=3)
        finally:
            tasks.huey.immediate = False


def test_a_step_that_fails_after_the_fetch_is_retried_without_fetching_again(
    immediate, arxiv, settings, caplog
):
    # The signing key cannot be read (a folder where its file should be): building fails.
    key = settings.var_dir / "secret_key"
    key.unlink(missing_ok=True)
    key.mkdir(parents=True)

    assert immediate.daily_job().get() == {"date": today(), "fetch_errors": 0}

    assert len(arxiv.requests) == len(PAPERS)  # fetched once
    assert outbox_texts() == {}
    assert any(r.exc_info and isinstance(r.exc_info[1], IsADirectoryError) for r in caplog.records)
    (retry,) = immediate.huey.scheduled()  # Huey's retry of the failed step, in 30 s
    assert (retry.name, retry.args, retry.retries) == ("daily_digest", (today(),), 19)

    key.rmdir()  # the operator fixes it; the retry comes
    immediate.huey.execute(retry, timestamp=retry.eta)  # as a worker does when it is due

    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}
    assert len(arxiv.requests) == len(PAPERS)  # and arXiv was not asked again


def test_status_shows_the_queue_deliveries_and_failures(cli, immediate, arxiv, monkeypatch):
    from tests.smtp_server import LocalSMTPServer

    with LocalSMTPServer(reject_recipients=["bo@example.org"]) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        immediate.daily_job()
    output = cli("status").output
    assert "Queue: 0 task(s) waiting" in output
    row = next(line for line in output.splitlines() if today() in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [today(), "0", "0", "1", "1", "0"]
    assert "failed  bo@example.org  550" in output


# --------------------------------------------------------------------------- the inbox


def test_the_inbox_is_read_every_interval_only_when_set(tasks, settings, monkeypatch):
    assert scheduled_at(tasks, 2026, 11, 27, 9, 10) == []  # NEWSLETTER_INBOX unset
    set_env(monkeypatch, inbox=str(settings.var_dir / "mail"), inbox_interval="15")
    assert scheduled_at(tasks, 2026, 11, 27, 6, 0) == ["scheduled_daily_job", "read_inbox"]
    assert scheduled_at(tasks, 2026, 11, 27, 9, 45) == ["read_inbox"]
    assert scheduled_at(tasks, 2026, 11, 27, 9, 50) == []


def test_the_worker_acts_on_new_mail_in_the_inbox_once(
    immediate, cli, settings, example_topics, monkeypatch
):
    import mailbox

    sent = digests_sent(cli, settings, "ghost@example.net", "ada@example.org")
    maildir = settings.var_dir / "Maildir"
    set_env(monkeypatch, inbox=str(maildir))
    assert immediate.read_inbox.call_local() == {"acted_on": 0, "read_before": 0}  # no mail yet

    box = mailbox.Maildir(maildir)  # as Postfix delivers with home_mailbox = Maildir/
    box.add(bounce_of(sent, "ghost@example.net", "5.1.1", "550 5.1.1 User unknown").encode())
    box.add(b"From: friend@example.net\nSubject: Out of office\n\nBack Monday.\n")
    assert immediate.read_inbox.call_local() == {"acted_on": 1, "read_before": 0}
    assert status_of(cli, "ghost@example.net") == "bounced"
    assert status_of(cli, "ada@example.org") == "active"

    assert immediate.read_inbox.call_local() == {"acted_on": 0, "read_before": 1}


def test_a_daily_job_with_nothing_to_do_fetches_nothing_and_publishes_nothing(
    immediate, cli, settings, monkeypatch, caplog
):
    cli("topics", "list")  # a fresh install: the schema, no topic
    with ArxivServer() as server:  # no request may reach it
        set_env(monkeypatch, arxiv_api_url=server.url)
        summary = immediate.daily_job().get()
        assert "there are no topics yet" in summary["nothing_to_do"]
        cli("topics", "add", "SLAM", "-k", "slam")
        assert "no active subscriber" in immediate.daily_job().get()["nothing_to_do"]
        assert server.requests == []
    with session_scope(settings) as session:
        assert store.list_digests(session) == []
    assert "daily job: nothing to do" in caplog.text


def test_a_fetch_longer_than_the_lock_s_lifetime_keeps_it(settings, monkeypatch, redis_url):
    from newsletter.worker.fetchlock import KEY, fetch_lock

    settings = set_env(monkeypatch, redis_url=redis_url, heartbeat_interval="0.2")
    client = redis.Redis.from_url(redis_url)
    client.delete(KEY)
    with fetch_lock(settings):
        time.sleep(1.5)  # more than twice the 0.6 s the key lives unless renewed
        assert client.get(KEY) is not None and client.pttl(KEY) > 0
    assert client.get(KEY) is None  # released by its holder


@pytest.mark.parametrize("database_url", [None])
def test_a_redis_that_stops_answering_fails_the_fetch_lock_rather_than_hang_it(
    settings, monkeypatch
):
    from newsletter.worker.fetchlock import fetch_lock

    outcome: list[object] = []

    def take(settings: Settings) -> None:
        try:
            with fetch_lock(settings):
                outcome.append("held")
        except redis.RedisError as error:
            outcome.append(error)

    # A server that takes connections (the kernel's backlog does) and never says a word.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        port = silent.getsockname()[1]
        settings = set_env(monkeypatch, redis_url=f"redis://127.0.0.1:{port}/0")
        thread = threading.Thread(target=take, args=(settings,), daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "the fetch lock waited for ever on a silent Redis"
    (error,) = outcome
    assert isinstance(error, redis.TimeoutError)  # a failure, which Huey retries


# --------------------------------------------------------------------------- catching up


@pytest.mark.parametrize("database_url", [None])
def test_the_worker_s_scheduler_catches_up_the_minutes_it_missed_once(tasks, settings, monkeypatch):
    set_env(monkeypatch, inbox=str(settings.var_dir / "mail"), inbox_interval="15")
    scheduler = tasks.huey.create_consumer(workers=1, periodic=True)._create_scheduler()
    scheduler.last_checked = datetime(2026, 11, 27, 5, 57)  # a Friday; the daily time is 06:00

    def enqueued_at(*moment: int) -> list[str]:
        """The periodic tasks the scheduler queues when it checks at this UTC time."""
        scheduler.enqueue_periodic_tasks(datetime(*moment))
        pending = tasks.huey.pending()
        names = sorted(task.name for task in pending if task.name not in EVERY_FEW_MINUTES)
        tasks.huey.flush()
        return names

    assert enqueued_at(2026, 11, 27, 5, 58, 40) == []
    # Blocked from 05:59 to 06:20 (the queue was away): what was due meanwhile runs, once each,
    # though the inbox's minutes came twice (06:00 and 06:15).
    assert enqueued_at(2026, 11, 27, 6, 20, 3) == ["read_inbox", "scheduled_daily_job"]
    assert enqueued_at(2026, 11, 27, 6, 20, 59) == []  # a minute is checked once
    assert enqueued_at(2026, 11, 27, 6, 19, 30) == []  # even when the clock steps back
    assert enqueued_at(2026, 11, 27, 6, 30, 0) == ["read_inbox"]
    # Away all weekend: the last day is caught up, the Monday's daily job once.
    assert enqueued_at(2026, 11, 30, 6, 5) == ["read_inbox", "scheduled_daily_job"]
    # A clock set back a week (it was wrong): checked from then on, not stuck for a week.
    assert enqueued_at(2026, 11, 23, 6, 0, 30) == ["read_inbox", "scheduled_daily_job"]


# --------------------------------------------------------------------------- the sweep


def test_the_periodic_sweep_waits_a_grace_and_looks_at_the_last_week_only(
    tasks, cli, settings, example_topics
):
    from newsletter.daily import send
    from newsletter.models import Delivery, Digest, utcnow

    for address in ("ada@example.org", "bo@example.org"):
        cli("subscribers", "add", address, "-t", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    digest_id, _translation = send.build(settings, settings.today())

    def swept(**options: bool) -> list[int]:
        queued = tasks.sweep(settings, **options)
        assert tasks.huey.pending_count() == (1 if queued else 0)  # one batch: one task
        tasks.huey.flush()
        return queued

    # Due this very moment: a `deliver` task's successor may be due now too, on its way.
    assert swept(periodic=True) == []
    assert swept() == [digest_id]  # a worker that starts has no later sweep to wait for
    grace = tasks.SWEEP_GRACE + settings.heartbeat_interval
    with session_scope(settings) as session:
        session.execute(update(Delivery).values(created_at=utcnow() - timedelta(seconds=grace)))
    assert swept(periodic=True) == [digest_id]  # overdue: forgotten

    with session_scope(settings) as session:
        older = settings.today() - timedelta(days=tasks.SWEEP_DAYS + 1)
        session.execute(update(Digest).values(issue_date=older))
    assert swept() == []  # news no longer


def test_a_deliver_task_says_how_many_it_found_in_the_send_journal(
    immediate, cli, settings, example_topics, monkeypatch
):
    from newsletter.daily import send
    from newsletter.delivery.journal import journal_for
    from newsletter.models import utcnow

    settings = set_env(monkeypatch, outbox_dir=str(settings.var_dir.parent / "outbox"))
    add_subscribers(settings, "SLAM", 4)
    store_papers(settings, "SLAM", paper(1))
    digest_id, _translation = send.build(settings, settings.today())
    dead = ended_sender()
    with session_scope(settings) as session:  # it claimed two rows, sent them, and died
        long_ago = utcnow() - timedelta(minutes=1)
        held = store.claim_deliveries(session, digest_id, dead, 2, long_ago, timedelta(seconds=1))
    for key in held:
        journal_for(settings, digest_id, dead).record(key, f"250 2.0.0 Ok: queued as D{key}")

    found = immediate.deliver(digest_id).get()
    nothing_left = immediate.deliver(digest_id).get()

    assert found == {"digest_id": digest_id, "sent": 2, "failed": 0, "deferred": 0,
                     "remaining": 0, "recovered": 2}  # fmt: skip
    assert "recovered" not in nothing_left  # said only when there is something to say
    assert len(outbox_texts()) == 2


def two_workers_send_the_digest(settings, monkeypatch, tmp_path, redis_url, readers, **env):
    """The daily job's digest step queued for `readers` readers of SLAM and done by two real
    workers on Redis until every row is sent (`env`: settings for both); its summary, the
    workers, what the SMTP sink received, the readers' addresses."""
    from tests.smtp_sink import SmtpSink

    emails = add_subscribers(settings, "SLAM", readers)
    store_papers(settings, "SLAM", paper(1), paper(2))
    away = (datetime.now(UTC).hour + 12) % 24  # the scheduler's own daily job stays out
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    with SmtpSink() as sink:
        set_env(monkeypatch, smtp_url=sink.url, daily_time=f"{away:02d}:00", **env)
        with tasks_on_redis(redis_url, monkeypatch) as tasks:
            (tmp_path / "a").mkdir()
            (tmp_path / "b").mkdir()
            try:
                with (
                    WorkerProcess(tmp_path / "a") as first,
                    WorkerProcess(tmp_path / "b", "--no-periodic") as second,
                ):
                    summary = tasks.daily_digest(today()).get(blocking=True, timeout=60)
                    digest_id = summary["digest_id"]

                    def all_sent() -> bool:
                        with session_scope(settings) as session:
                            counts = store.delivery_counts(session, digest_id)
                        return counts == {"sent": readers}

                    first.wait_for(all_sent, f"all {readers} rows sent")
            finally:
                client.flushdb()
                client.close()
        return summary, (first, second), sink.messages(), emails


def test_two_real_workers_on_redis_share_one_digest_from_its_first_rows_each_row_once(
    cli, settings, example_topics, monkeypatch, tmp_path, redis_url
):
    """The daily job's digest step queues a deliver task for each batch of rows as serving
    commits them: both workers send, every reader gets one message, every row ends sent."""
    readers, batch = 1_000, 50
    # Paced (across both workers, through Redis) so that the send outlasts any worker's
    # polling of an idle queue: both are at work before it is over.
    summary, workers, received, emails = two_workers_send_the_digest(
        settings, monkeypatch, tmp_path, redis_url, readers,
        send_batch_size=str(batch), send_rate="300",
    )  # fmt: skip

    assert summary["batches"] == readers // batch + 1  # one a batch as written, one for the rest
    sent = [
        sum(int(n) for n in re.findall(r"deliver digest \d+: .*'sent': (\d+)", worker.output()))
        for worker in workers
    ]
    assert sum(sent) == readers and min(sent) > 0, sent
    assert sorted(message.recipient for message in received) == sorted(emails)


def test_two_real_workers_on_redis_each_write_a_share_of_the_rows_each_reader_once(
    cli, settings, example_topics, monkeypatch, tmp_path, redis_url
):
    """The daily job's digest step builds the edition, then queues the rows' writing in shares
    by subscriber id (`serve_part`) that either worker takes: both write rows, every reader
    gets one row and one message, every row ends sent."""
    readers, share = 1_200, 12
    summary, workers, received, emails = two_workers_send_the_digest(
        settings, monkeypatch, tmp_path, redis_url, readers,
        serve_part_size=str(share), send_batch_size="100",
    )  # fmt: skip

    assert summary["parts"] >= readers // share
    written = [
        [int(n) for n in re.findall(r"serve part of \S+: .*'rows': (\d+)", worker.output())]
        for worker in workers
    ]
    assert sum(map(len, written)) == summary["parts"]  # each share served once
    assert sum(map(sum, written)) == readers and all(map(sum, written)), written
    assert sorted(message.recipient for message in received) == sorted(emails)


def counted_streams(monkeypatch: pytest.MonkeyPatch) -> list:
    """The `subscriber_ids` of each stream of the list made from now on (None: every reader)."""
    from newsletter.digest import segments

    streams, real_stream = [], segments.Readers.stream

    def counted_stream(*args, **kwargs):
        streams.append(kwargs.get("subscriber_ids"))
        return real_stream(*args, **kwargs)

    monkeypatch.setattr(segments.Readers, "stream", staticmethod(counted_stream))
    return streams


@pytest.mark.parametrize("share_size", [100_000, 10])
def test_the_builders_share_serves_the_readers_as_the_build_streamed_them(
    immediate, cli, settings, example_topics, monkeypatch, share_size: int
):
    """The daily job streams its readers once, to build the digest (translations for what
    they get), and its own share is served from that stream and that edition: the list is
    not read again for it. Other shares read their own readers."""
    from newsletter.daily import serve as serving

    emails = add_subscribers(settings, "SLAM", 30)
    store_papers(settings, "SLAM", paper(1))
    set_env(
        monkeypatch,
        serve_part_size=str(share_size),
        outbox_dir=str(settings.var_dir.parent / "outbox"),
    )
    reads, real_read = [], serving._read_edition

    def counted_read(*args, **kwargs):
        reads.append(args)
        return real_read(*args, **kwargs)

    streams = counted_streams(monkeypatch)
    monkeypatch.setattr(serving, "_read_edition", counted_read)
    immediate.daily_digest(today())

    shares = -(-len(emails) // share_size)
    assert streams[0] is None  # the build's: every reader
    # each other share reads its own readers (by id), and the edition once
    assert len(streams) == shares and all(ids for ids in streams[1:])
    assert len(reads) == shares - 1
    assert sorted(outbox_texts()) == sorted(emails)


def test_a_stream_made_for_an_older_day_is_not_served_the_newest_digest(
    immediate, cli, settings, example_topics, monkeypatch
):
    """A daily job retried after the next day's digest was ready built its own, older day:
    its stream (that day's followed papers in its segments) is not used for the newest
    digest, whose readers are read again."""
    from datetime import date

    from newsletter.daily import send
    from newsletter.daily import serve as serving

    emails = add_subscribers(settings, "SLAM", 3)
    store_papers(settings, "SLAM", paper(1))
    day = date.fromisoformat(today())
    send.build_daily(settings, day - timedelta(days=1))  # its first try, then the next day's
    send.build_daily(settings, day)
    _edition, _translation, older = send.build_daily(settings, day - timedelta(days=1))
    streams = counted_streams(monkeypatch)
    report = serving.serve_due(settings, on=day, streamed=older)

    assert older.on == day - timedelta(days=1)
    assert len(streams) == 1 and len(streams[0]) == len(emails)  # read again, by id
    assert report.given == len(emails)  # moved on to the newest digest's window


def test_readers_a_killed_share_left_are_given_their_rows_by_the_next_serving(
    immediate, cli, settings, example_topics, monkeypatch
):
    """A worker killed while writing its share of the rows (here: in its second chunk's
    transaction, the first committed) leaves the rest of its readers due: the quarter hour's
    `serve_readers` gives them their rows, and nobody a second one."""
    from newsletter.daily import serve as serving

    emails = add_subscribers(settings, "SLAM", 30)
    store_papers(settings, "SLAM", paper(1))
    set_env(monkeypatch, serve_part_size="10", outbox_dir=str(settings.var_dir.parent / "outbox"))
    monkeypatch.setattr(serving, "INSERT_CHUNK", 4)
    real, chunks = serving.write_rows, []

    def dies_after_a_chunk(*args):
        chunks.append(real(*args))
        if len(chunks) == 2:  # the first share served dies in its second chunk's transaction
            raise SystemExit("killed")
        return chunks[-1]

    monkeypatch.setattr(serving, "write_rows", dies_after_a_chunk)
    with pytest.raises(SystemExit):
        immediate.daily_digest(today())
    with session_scope(settings) as session:
        (digest_id,) = {row.digest_id for row in session.scalars(select(Delivery))}
        assert store.count_unfinished(session, digest_id) == chunks[0] < len(emails)

    monkeypatch.setattr(serving, "write_rows", real)
    immediate.serve_readers()
    immediate.deliver(digest_id)

    with session_scope(settings) as session:
        rows = session.scalars(select(Delivery.subscriber_id)).all()
        assert store.delivery_counts(session, digest_id) == {"sent": len(emails)}
    assert len(rows) == len(set(rows)) == len(emails)
    assert sorted(outbox_texts()) == sorted(emails)
