"""A worker killed in the middle of a big send: nobody is missed, nothing is sent twice but what
the dead worker had sent and not yet marked sent, at most NEWSLETTER_RECORD_EVERY messages
(the documented bound).

Two real `newsletter worker --workers 1` processes share a 5,000-subscriber digest over Redis
and deliver it into one smtp-sink, which keeps every accepted message's recipient and
Message-ID. A third of the way through, one worker is killed with SIGKILL (no cleanup of any
kind: its claimed rows stay `sending` until their lease ends) and started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest
import redis
from sqlalchemy import insert, select

from newsletter import jobs, store
from newsletter.config import get_settings
from newsletter.db import session_scope
from newsletter.models import Delivery, Subscriber, SubscriberTopic, new_public_id
from newsletter.subscribers import email_key
from tests.conftest import set_env
from tests.smtp_sink import SmtpSink
from tests.test_digest import paper, store_papers
from tests.test_tasks import load_tasks, read, stop, worker_command

DAY = date(2026, 11, 27)
SUBSCRIBERS = 5_000
BATCH = 100
LEASE = 3.0  # seconds: rows the dead worker held come due again this soon
SENDING_THREADS_KILLED = 1  # one worker process, --workers 1
RECORD_EVERY = 20  # sends written together: several groups a batch, so a kill can split one
IN_FLIGHT_BOUND = SENDING_THREADS_KILLED * RECORD_EVERY  # accepted, not yet marked, per thread
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
def redis_tasks(
    settings, clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """`newsletter.tasks` on the test Redis, as the workers load it; the default one after."""
    set_env(monkeypatch, redis_url=clean_redis)
    tasks = load_tasks()
    yield tasks
    tasks.huey.storage.conn.close()
    monkeypatch.delenv("NEWSLETTER_REDIS_URL")
    get_settings.cache_clear()
    load_tasks()


def add_subscribers(settings, topic: str, count: int) -> list[str]:
    """`count` active subscribers of one topic, inserted in bulk; their addresses."""
    emails = [f"reader{number:05d}@example.org" for number in range(count)]
    with session_scope(settings) as session:
        topic_id = store.get_topic(session, topic).id
        session.execute(
            insert(Subscriber),
            [{"email": e, "email_key": email_key(e), "public_id": new_public_id()} for e in emails],
        )
        ids = session.scalars(select(Subscriber.id).where(Subscriber.email.in_(emails)))
        session.execute(
            insert(SubscriberTopic), [{"subscriber_id": i, "topic_id": topic_id} for i in ids]
        )
    return emails


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


def held_by(settings, digest_id: int, pid: int) -> int:
    """Rows a process holds (`sending`, claimed under its pid)."""
    with session_scope(settings) as session:
        rows = store.claims_in_flight(session, digest_id)
    return sum(count for worker, count, _lease in rows if f":{pid}:" in worker)


def message_ids(settings, digest_id: int) -> dict[str, str]:
    with session_scope(settings) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.message_id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.digest_id == digest_id)
        )
        return {email: message_id for email, message_id in rows}


def test_a_worker_killed_midway_misses_nobody_and_duplicates_at_most_its_unmarked_sends(
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
            record_every=str(RECORD_EVERY),
            send_rate="2000",  # high enough not to limit, so that the shared pace is exercised
        )
        tasks = redis_tasks  # the test's Huey is the workers' Redis queue
        workers = Workers(tmp_path)
        try:
            workers.start("worker-a")
            workers.start("worker-b")
            started = time.monotonic()
            digest_id, _translation = jobs.build(settings, DAY)
            batches = tasks.queue_delivery(settings, digest_id)
            assert batches == SUBSCRIBERS // BATCH

            doomed = workers.running["worker-a"].pid

            def midway() -> bool:  # a third sent, and the doomed worker holds a batch
                return sink.count() >= SUBSCRIBERS // 3 and held_by(settings, digest_id, doomed) > 0

            wait_until(midway, DEADLINE, "a third sent", workers)
            killed_pid = workers.kill("worker-a")
            arrived_at_kill = sink.count()
            held_at_kill = held_by(settings, digest_id, killed_pid)
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

    # The kill happened midway, so the test is about a crash, not a finished send.
    assert SUBSCRIBERS // 3 <= arrived_at_kill < SUBSCRIBERS
    copies = Counter(message.recipient for message in received)
    assert set(copies) == set(emails), (
        f"missed: {sorted(set(emails) - set(copies))[:10]}; sink log: {sink_output[-2000:]}"
    )
    duplicates = len(received) - len(copies)
    assert duplicates <= IN_FLIGHT_BOUND, Counter(copies.values())
    # Every copy carries its row's Message-ID, so a duplicate is recognisable as one.
    expected = message_ids(settings, digest_id)
    assert all(message.message_id == expected[message.recipient] for message in received)
    assert delivery_states(settings, digest_id) == {"sent": SUBSCRIBERS}

    with capsys.disabled():
        backend = settings.database_url.split(":", 1)[0]
        print(
            f"\n[crash, {backend}] {len(received)} messages for {SUBSCRIBERS} subscribers in"
            f" {elapsed:.1f} s ({len(received) / elapsed:.0f}/s); killed after"
            f" {arrived_at_kill} arrived, holding {held_at_kill} rows;"
            f" duplicates: {duplicates} (bound {IN_FLIGHT_BOUND})"
        )


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
            record_every=str(RECORD_EVERY),
        )
        tasks = redis_tasks
        workers = Workers(tmp_path)
        try:
            workers.start("worker")
            digest_id, _translation = jobs.build(settings, DAY)
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
