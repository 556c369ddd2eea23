"""A sender killed in the middle of a big send: nobody is missed, and nothing is sent twice but
the one message a killed sending thread had in flight (accepted by the relay, not yet noted in
the send journal): the documented bound.

Two real `newsletter worker --workers 1` processes share a 5,000-subscriber digest over Redis
and deliver it into one smtp-sink, which keeps every accepted message's recipient and
Message-ID. A third of the way through, while one worker has sends the database does not know
of yet (a whole batch is written at once here), it is killed with SIGKILL (no cleanup of any
kind: its claimed rows stay `sending` until their lease ends) and started again: the Redis
journal is what keeps those sends from going again. Then the same with `newsletter send`
(no Redis: the file journal) killed and run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
import redis
from sqlalchemy import select

from newsletter import store
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.delivery.journal import FOLDER, journal_for
from newsletter.models import Delivery, DeliveryStatus, Subscriber
from tests.helpers import (
    add_subscribers,
    paper,
    read,
    set_env,
    stop,
    store_papers,
    tasks_on_redis,
    worker_command,
)
from tests.smtp_sink import SmtpSink

DAY = datetime.now(UTC).date() - timedelta(days=1)
"""Yesterday: the sweep that finds what a killed worker left looks at the last SWEEP_DAYS only."""
SUBSCRIBERS = 5_000
BATCH = 100
LEASE = 3.0  # seconds: rows the dead worker held come due again this soon
SENDING_THREADS_KILLED = 1  # one worker process, --workers 1 (and `newsletter send`: one)
IN_FLIGHT_PER_THREAD = 1  # accepted by the relay, not yet noted in the send journal
IN_FLIGHT_BOUND = SENDING_THREADS_KILLED * IN_FLIGHT_PER_THREAD
UNWRITTEN_AT_KILL = 10
"""Sends the killed sender has noted in the journal and not written to the database, at least:
without the journal, each would go twice."""
GROUPS = {"record_every": str(BATCH), "record_interval": "600"}
"""Sends written to the database a whole batch at once, so that a kill leaves many unwritten."""
DEADLINE = 150.0  # seconds for the whole send; a run takes a fraction of it


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    """The tests' Redis database (see conftest's REDIS_URL) emptied before and after: the Huey
    queue and the send-pace key live there."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield redis_url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_tasks(clean_redis: str, settings, monkeypatch) -> Iterator[ModuleType]:
    """`newsletter.worker.tasks` on the test Redis, as workers load it; the default one after."""
    with tasks_on_redis(clean_redis, monkeypatch) as tasks:
        yield tasks


class Workers:
    """`newsletter worker` processes started with this test's environment, each with a log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str) -> subprocess.Popen:
        log = self.logs[name] = self.folder / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*worker_command(), "--workers", "1", "--no-periodic"],
                cwd=self.folder,
                env=dict(os.environ),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.running[name] = process
        wait_until(lambda: "Huey consumer started" in read(log), 30, f"{name} to start", self)
        return process

    def kill(self, name: str) -> int:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        return process.pid

    def check_alive(self, what: str) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}) before {what}\n{self.text()}")

    def stop_all(self) -> None:
        for process in self.running.values():
            stop(process)
        self.running.clear()

    def text(self) -> str:
        return "\n".join(f"---- {name}\n{read(log)[-6000:]}" for name, log in self.logs.items())


def wait_until(condition: Callable[[], bool], seconds: float, what: str, workers: Workers) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        workers.check_alive(what)
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds:.0f} s; worker logs:\n{workers.text()}")
        time.sleep(0.1)


def delivery_states(settings, digest_id: int) -> dict[str, int]:
    with session_scope(settings) as session:
        return store.delivery_counts(session, digest_id)


def held_by(settings, digest_id: int, pid: int) -> list[int]:
    """The rows a process holds (`sending`, claimed under its pid)."""
    with session_scope(settings) as session:
        return list(
            session.scalars(
                select(Delivery.id).where(
                    Delivery.digest_id == digest_id,
                    Delivery.status == DeliveryStatus.sending,
                    Delivery.claimed_by.like(f"%:{pid}:%"),
                )
            )
        )


def unwritten_sends(settings, digest_id: int, delivery_ids: list[int]) -> int:
    """How many of these rows are noted in the send journal (sent, maybe not marked yet)."""
    journal = journal_for(settings, digest_id, "the-test:0:0")
    return len(journal.recorded_among(delivery_ids))


def message_ids(settings, digest_id: int) -> dict[str, str]:
    with session_scope(settings) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.message_id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.digest_id == digest_id)
        )
        return {email: message_id for email, message_id in rows}


def test_a_worker_killed_midway_misses_nobody_and_duplicates_at_most_its_message_in_flight(
    cli, settings, example_topics, monkeypatch, tmp_path, redis_tasks, capsys
):
    emails = add_subscribers(settings, "SLAM", SUBSCRIBERS)
    store_papers(settings, "SLAM", paper(1), paper(2))
    with SmtpSink() as sink:
        settings = set_env(
            monkeypatch,
            smtp_url=sink.url,
            delivery_lease=str(LEASE),
            send_batch_size=str(BATCH),
            send_rate="2000",  # high enough not to limit, so that the shared pace is exercised
            **GROUPS,
        )
        tasks = redis_tasks  # the test's Huey is the workers' Redis queue
        workers = Workers(tmp_path)
        try:
            workers.start("worker-a")
            workers.start("worker-b")
            started = time.monotonic()
            digest_id, _translation = send.build(settings, DAY)
            batches = tasks.queue_delivery(settings, digest_id)
            assert batches == SUBSCRIBERS // BATCH

            doomed = workers.running["worker-a"].pid

            def midway() -> bool:  # a third sent, the doomed worker midway through a batch
                if sink.count() < SUBSCRIBERS // 3:
                    return False
                # Looked at while the worker is stopped, so that it cannot write its group
                # between this look and the kill; it goes on when the moment is not the one.
                os.kill(doomed, signal.SIGSTOP)
                held = held_by(settings, digest_id, doomed)
                if unwritten_sends(settings, digest_id, held) >= UNWRITTEN_AT_KILL:
                    return True  # killed stopped: SIGKILL ends a stopped process too
                os.kill(doomed, signal.SIGCONT)
                return False

            wait_until(midway, DEADLINE, "a third sent", workers)
            killed_pid = workers.kill("worker-a")
            arrived_at_kill = sink.count()
            held_at_kill = held_by(settings, digest_id, killed_pid)
            unwritten_at_kill = unwritten_sends(settings, digest_id, held_at_kill)
            workers.start("worker-a-again")

            wait_until(
                lambda: delivery_states(settings, digest_id) == {"sent": SUBSCRIBERS},
                DEADLINE,
                f"all {SUBSCRIBERS} deliveries sent",
                workers,
            )
            elapsed = time.monotonic() - started
        finally:
            workers.stop_all()
        received = sink.messages()
        sink_output = sink.output

    report(
        capsys,
        settings,
        received,
        f"redis journal, {{backend}}] {len(received)} messages for {SUBSCRIBERS} subscribers"
        f" in {elapsed:.1f} s ({len(received) / elapsed:.0f}/s); killed after"
        f" {arrived_at_kill} arrived, holding {len(held_at_kill)} rows, {unwritten_at_kill}"
        " of them sent and not written",
    )
    # The kill happened midway, with sends the database did not know of: a crash that matters.
    assert SUBSCRIBERS // 3 <= arrived_at_kill < SUBSCRIBERS
    assert unwritten_at_kill >= UNWRITTEN_AT_KILL
    check_once_each(settings, digest_id, emails, received, sink_output)
    assert unwritten_sends(settings, digest_id, held_at_kill) == 0  # folded, and dropped


def report(capsys, settings, received, what: str) -> None:
    """Print the run's figures and its duplicates (the suite's output shows them), `what`
    holding `{backend}` where the database's name goes."""
    duplicates = len(received) - len({message.recipient for message in received})
    backend = settings.database_url.split(":", 1)[0]
    with capsys.disabled():
        print(
            f"\n[crash, {what.format(backend=backend)}; duplicates: {duplicates}"
            f" (bound {IN_FLIGHT_BOUND})"
        )


def check_once_each(settings, digest_id: int, emails: list[str], received, log: str) -> None:
    """Everyone got the digest, at most IN_FLIGHT_BOUND of them twice, each copy recognisable
    as one, and every row ended sent."""
    copies = Counter(message.recipient for message in received)
    assert set(copies) == set(emails), (
        f"missed: {sorted(set(emails) - set(copies))[:10]}; sink log: {log[-2000:]}"
    )
    twice = [email for email, count in copies.items() if count > 1]
    assert len(received) - len(copies) <= IN_FLIGHT_BOUND, (Counter(copies.values()), twice)
    # Every copy carries its row's Message-ID, so a duplicate is recognisable as one.
    expected = message_ids(settings, digest_id)
    assert all(message.message_id == expected[message.recipient] for message in received)
    assert delivery_states(settings, digest_id) == {"sent": len(emails)}


def test_a_lone_worker_killed_mid_task_finishes_the_digest_once_started_again(
    cli, settings, example_topics, monkeypatch, tmp_path, redis_tasks
):
    """Huey forgets a task whose worker died. With one worker and a digest of one batch, the
    task that died was the only one: the worker started again must still finish the digest."""
    emails = add_subscribers(settings, "SLAM", 6)
    store_papers(settings, "SLAM", paper(1))
    with SmtpSink("-w", "1") as sink:  # a slow relay: a second before each DATA is answered
        settings = set_env(
            monkeypatch,
            smtp_url=sink.url,
            delivery_lease="2",
            send_batch_size=str(BATCH),
            **GROUPS,
        )
        tasks = redis_tasks
        workers = Workers(tmp_path)
        try:
            workers.start("worker")
            digest_id, _translation = send.build(settings, DAY)
            assert tasks.queue_delivery(settings, digest_id) == 1

            wait_until(lambda: sink.count() >= 2, 30, "two messages", workers)
            workers.kill("worker")
            assert sink.count() < len(emails)
            workers.start("worker-again")

            wait_until(
                lambda: delivery_states(settings, digest_id) == {"sent": len(emails)},
                60,
                "the rest sent by the restarted worker",
                workers,
            )
        finally:
            workers.stop_all()
        received = sink.messages()
    copies = Counter(message.recipient for message in received)
    assert set(copies) == set(emails)
    assert len(received) - len(copies) <= IN_FLIGHT_BOUND


# --------------------------------------------------------------------------- `newsletter send`

CLI_SUBSCRIBERS = 2_000
CLI_BATCH = 500  # the default claim; its sends written all at once, when it ends
CLI_UNWRITTEN_AT_KILL = 100


def test_newsletter_send_killed_then_run_again_sends_nothing_twice_but_its_message_in_flight(
    cli, settings, example_topics, monkeypatch, tmp_path, capsys
):
    """`newsletter send` without Redis keeps its journal in a file under the var folder, which
    the kernel keeps when SIGKILL ends the process; the run after it reads it."""
    emails = add_subscribers(settings, "SLAM", CLI_SUBSCRIBERS)
    store_papers(settings, "SLAM", paper(1), paper(2))
    digest_id, _translation = send.build(settings, DAY)
    with session_scope(settings) as session:
        every_row = [row.id for row in store.deliveries_of(session, digest_id)]
    command = [*worker_command()[:-1], "send", "--date", DAY.isoformat()]
    log = tmp_path / "send.log"
    with SmtpSink() as sink:
        settings = set_env(
            monkeypatch,
            smtp_url=sink.url,
            delivery_lease=str(LEASE),
            send_batch_size=str(CLI_BATCH),
            record_every=str(CLI_BATCH),
            record_interval="600",
        )
        with log.open("wb") as output:
            first = subprocess.Popen(
                command, cwd=tmp_path, env=dict(os.environ), stdout=output, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + DEADLINE
            while unwritten_sends(settings, digest_id, every_row) < CLI_UNWRITTEN_AT_KILL:
                if first.poll() is not None:
                    pytest.fail(f"newsletter send ended ({first.returncode}):\n{read(log)[-4000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"newsletter send sent nothing in {DEADLINE:.0f} s:\n{read(log)}")
                time.sleep(0.02)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)  # reaped: a zombie's pid would still look alive
        arrived_at_kill = sink.count()
        unwritten_at_kill = unwritten_sends(settings, digest_id, every_row)

        again = subprocess.run(
            command, cwd=tmp_path, env=dict(os.environ), capture_output=True, timeout=DEADLINE
        )
        assert again.returncode == 0, (again.stdout + again.stderr).decode(errors="replace")
        received = sink.messages()
        sink_output = sink.output

    report(
        capsys,
        settings,
        received,
        f"file journal, {{backend}}] newsletter send killed after {arrived_at_kill} arrived,"
        f" {unwritten_at_kill} of them not written; run again: {len(received)} messages for"
        f" {CLI_SUBSCRIBERS} subscribers",
    )
    assert 0 < arrived_at_kill < CLI_SUBSCRIBERS
    assert unwritten_at_kill >= CLI_UNWRITTEN_AT_KILL
    summary = again.stdout.decode(errors="replace")
    assert f" sent before, {unwritten_at_kill} found sent in the send journal." in summary
    check_once_each(settings, digest_id, emails, received, sink_output)
    assert list((settings.var_dir / FOLDER).iterdir()) == []  # folded, then removed
