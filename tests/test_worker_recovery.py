"""A worker that heals itself: each part it needs goes away under a real `newsletter worker`
and comes back, and the digest finishes without anyone typing `newsletter run` again.

The parts are real and the test's own: a redis-server on a spare port (stopped, it comes back
empty, as a Redis without persistence does: every task in it is lost), Postfix's smtp-sink
(which keeps each message it accepted, so "exactly once" is counted where mail arrives), and
PostgreSQL behind a TCP relay of the test's that refuses connections while it is stopped.

The worker runs with short intervals (heartbeat 0.5 s, backoff capped at 4 s), so an outage
shows its steps (1 s, 2 s, 4 s, 4 s …) within seconds.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.engine import make_url

from newsletter import store
from newsletter.config import get_settings
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.models import Delivery, DeliveryStatus
from tests.helpers import (
    Cli,
    RedisServer,
    free_port,
    load_tasks,
    paper,
    read,
    set_env,
    stop,
    store_papers,
    tasks_on_redis,
    worker_command,
)
from tests.smtp_sink import SmtpSink

READERS = [f"reader{number}@example.org" for number in range(6)]
CAP = 4  # NEWSLETTER_RECOVERY_INTERVAL in these tests: the longest wait between tries
STEP = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARNING newsletter\.worker\.outages"
    r" (?P<part>.+?) (?:unreachable|busy) \((?P<reason>.*)\); retrying in (?P<wait>\d+) s$",
    re.MULTILINE,
)


# --------------------------------------------------------------------------- real parts


class TcpRelay:
    """Forwards connections from a port of its own to `target`. Stopped, it refuses new
    connections and cuts the open ones, as a database server that went down does."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        self.acceptor: threading.Thread | None = None

    def start(self) -> TcpRelay:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.1)
        self.acceptor = threading.Thread(target=self._accept, args=(self.listener,), daemon=True)
        self.acceptor.start()
        return self

    def stop(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            sockets, self.open = self.open, []
        if listener is not None:
            listener.close()
        if self.acceptor is not None:
            # The kernel keeps the port listening until the thread's accept() returns (up to
            # its 0.1 s timeout): a start before then would find it in use.
            self.acceptor.join(timeout=5)
            self.acceptor = None
        for sock in sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self.lock:
                if self.listener is not listener:  # stopped while this one was connecting
                    _close(client)
                    _close(upstream)
                    return
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _close(source)
    _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Worker:
    """A real `newsletter worker` with this test's environment, logging to a file."""

    def __init__(self, folder: Path, *options: str) -> None:
        self.log = folder / "worker.log"
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*worker_command(), *options],
                cwd=folder,
                env=dict(os.environ),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.wait_for(lambda: "Huey consumer started" in self.text(), "the worker to start")

    def text(self) -> str:
        return read(self.log)

    def wait_for(self, condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}) before {what}:\n"
                            f"{self.text()[-5000:]}")  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {seconds:.0f} s; worker log:\n{self.text()[-5000:]}")
            time.sleep(0.1)

    def steps(self, part: str) -> list[tuple[datetime, str, int]]:
        """The backoff lines about `part`: (when, why, seconds to the next try)."""
        return [
            (datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f"), m["reason"], int(m["wait"]))
            for m in STEP.finditer(self.text())
            if m["part"] == part
        ]

    def stop(self) -> int:
        return stop(self.process)


@pytest.fixture
def quick(settings, monkeypatch) -> None:
    """Short heartbeats and waits, a daily time far away (no daily job of the scheduler's)."""
    away = (datetime.now(UTC).hour + 12) % 24
    set_env(
        monkeypatch,
        heartbeat_interval="0.5",
        recovery_interval=str(CAP),
        smtp_retry_backoff="1",
        delivery_lease="20",
        daily_time=f"{away:02d}:00",
    )


@pytest.fixture
def readers(cli: Cli, settings, example_topics) -> list[str]:
    """Six readers of SLAM, and two new SLAM papers for their digest."""
    for email in READERS:
        cli("subscribers", "add", email, "-t", "SLAM")
    store_papers(settings, "SLAM", paper(1), paper(2))
    return READERS


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_tasks(own_redis: RedisServer, settings, monkeypatch) -> Iterator[ModuleType]:
    """`newsletter.worker.tasks` on the test's Redis, as the worker loads it; the default after."""
    with tasks_on_redis(own_redis.url, monkeypatch) as tasks:
        yield tasks


def delivery_states(digest_id: int) -> dict[str, int]:
    with session_scope(get_settings()) as session:
        return store.delivery_counts(session, digest_id)


def received_once_each(sink: SmtpSink, readers: list[str]) -> Counter:
    """Recipient → copies received. smtp-sink opens its dump file at DATA: stopped while
    waiting to answer DATA, it leaves an empty one, which is no message."""
    copies = Counter(
        message.recipient for message in sink.messages() if message.path.stat().st_size
    )
    assert set(copies) == set(readers), sink.output[-2000:]
    return copies


def assert_backoff(steps: list[tuple[datetime, str, int]], at_least: int) -> None:
    """One line per step, growing 1 s, 2 s, 4 s … up to the cap, each at the end of the last
    step: several threads waited, yet no step was logged twice. The first may say how the open
    connections were cut ("Connection reset by peer"); the others, that new ones are refused."""
    assert len(steps) >= at_least, steps
    assert [wait for _when, _why, wait in steps] == [min(2**n, CAP) for n in range(len(steps))]
    assert all(why for _when, why, _wait in steps), steps
    assert {why for _when, why, _wait in steps[1:]} == {"Connection refused"}, steps
    for (earlier, _why, wait), (later, _, _) in zip(steps, steps[1:], strict=False):
        assert (later - earlier).total_seconds() >= wait - 0.2, steps


def assert_recovered(worker: Worker, code: int, copies: Counter, part: str) -> str:
    """The worker stopped cleanly after one digest each, waited `part` out step by step and
    said when it was back, with no traceback; its log, for what else a test checks."""
    log = worker.text()
    assert code == 0, log
    assert all(count == 1 for count in copies.values()), copies
    assert_backoff(worker.steps(part), 3)
    back = rf"WARNING newsletter\.worker\.outages {re.escape(part)} is back after \d+ s"
    assert re.search(back, log)
    assert "Traceback" not in log
    return log


PER_DIGEST = 60  # seconds a digest may take in these tests, outages included


def wait_all_sent(worker: Worker, digest_id: int, readers: list[str]) -> None:
    """Until every reader's delivery of the digest is sent, within PER_DIGEST seconds."""
    worker.wait_for(
        lambda: delivery_states(digest_id) == {"sent": len(readers)},
        f"every reader's digest sent (digest {digest_id})",
        PER_DIGEST,
    )


# --------------------------------------------------------------------------- Redis


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_redis_going_away_is_waited_out_and_the_lost_tasks_are_found_again(
    cli, quick, readers, redis_tasks, own_redis, settings, monkeypatch, tmp_path
):
    with SmtpSink() as sink:
        set_env(monkeypatch, smtp_url=sink.url)
        worker = Worker(tmp_path, "--workers", "2")
        try:
            worker.wait_for(lambda: "Workers: 1 alive." in cli("status").output, "a heartbeat")
            own_redis.stop()
            part = f"Redis 127.0.0.1:{own_redis.port}"
            worker.wait_for(lambda: len(worker.steps(part)) >= 3, "three backoff steps")

            # Meanwhile the digest is built: the tasks it needs cannot reach the queue.
            digest_id, _translation = send.build(get_settings(), get_settings().today())
            own_redis.start()  # empty: whatever was queued before is gone too

            wait_all_sent(worker, digest_id, readers)
        finally:
            code = worker.stop()
        copies = received_once_each(sink, readers)

    log = assert_recovered(worker, code, copies, part)
    assert f"sweep: digest {digest_id} has deliveries due and no worker on it" in log
    assert "Error reading" not in log


# --------------------------------------------------------------------------- SMTP


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_smtp_relay_gone_mid_send_is_waited_out_and_each_reader_gets_one_digest(
    cli, quick, readers, settings, monkeypatch, tmp_path
):
    tasks = load_tasks()  # the embedded queue, in the var folder the worker shares
    with SmtpSink("-w", "1") as sink:  # a second before each DATA is answered: slow enough
        settings = set_env(monkeypatch, smtp_url=sink.url)
        worker = Worker(tmp_path, "--workers", "1")
        try:
            digest_id, _translation = send.build(settings, get_settings().today())
            assert tasks.queue_delivery(settings, digest_id) == 1
            worker.wait_for(lambda: sink.count() >= 2, "two messages")
            sink.stop()  # mid-send: the connection drops, and the relay refuses new ones

            part = f"SMTP relay 127.0.0.1:{sink.port}"
            worker.wait_for(lambda: len(worker.steps(part)) >= 3, "three backoff steps")
            status = cli("status").output
            assert "Workers: 1 alive." in status
            assert f"waiting: {part} unreachable (Connection refused) since" in status
            with session_scope(settings) as session:  # a row cut off in DATA waits its retry
                retried = session.scalars(
                    select(Delivery.detail).where(
                        Delivery.status == DeliveryStatus.pending, Delivery.attempts > 0
                    )
                ).all()
            assert all(detail in status for detail in retried), (retried, status)
            assert delivery_states(digest_id).get("failed", 0) == 0

            sink.options = ()  # the relay is back, answering at once
            sink.start()
            wait_all_sent(worker, digest_id, readers)
        finally:
            code = worker.stop()
        copies = received_once_each(sink, readers)

    log = assert_recovered(worker, code, copies, part)
    assert "DeliveryError" not in log
    assert "revoked" not in log  # no take-over task scheduled and cancelled any more


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_refusing_connections_is_waited_out(
    cli, quick, readers, redis_tasks, settings, monkeypatch, tmp_path
):
    direct = make_url(settings.database_url)
    relay = TcpRelay((direct.host, direct.port or 5432)).start()
    try:
        with SmtpSink() as sink:
            set_env(monkeypatch, smtp_url=sink.url)
            digest_id, _translation = send.build(get_settings(), get_settings().today())
            relayed = direct.set(host="127.0.0.1", port=relay.port)
            set_env(monkeypatch, database_url=relayed.render_as_string(hide_password=False))
            worker = Worker(tmp_path, "--workers", "2")  # it reaches PostgreSQL through the relay
            # The test itself does not go through the relay.
            settings = set_env(monkeypatch, database_url=direct.render_as_string(False))
            try:
                relay.stop()
                assert redis_tasks.queue_delivery(settings, digest_id) == 1
                part = f"PostgreSQL 127.0.0.1:{relay.port}"
                worker.wait_for(lambda: len(worker.steps(part)) >= 3, "three backoff steps")
                # Nothing went out while PostgreSQL was away. (The worker's first sweep may have
                # claimed the rows through the relay before it stopped: pending or sending.)
                states = delivery_states(digest_id)
                assert set(states) <= {"pending", "sending"}, states
                assert sum(states.values()) == len(readers)
                relay.start()
                wait_all_sent(worker, digest_id, readers)
            finally:
                code = worker.stop()
            copies = received_once_each(sink, readers)
    finally:
        relay.stop()

    assert_recovered(worker, code, copies, part)


# --------------------------------------------------------------------------- nobody listening


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_status_says_when_tasks_wait_and_no_worker_is_alive(
    cli, quick, readers, settings, monkeypatch, tmp_path
):
    settings = set_env(monkeypatch, send_batch_size="3")
    tasks = load_tasks()
    digest_id, _translation = send.build(settings, get_settings().today())
    assert tasks.queue_delivery(settings, digest_id) == 2

    waiting = cli("status").output
    assert "Queue: 2 task(s) waiting, 0 scheduled." in waiting
    assert "Workers: none alive." in waiting
    assert "2 task(s) waiting and no worker is alive: start `newsletter worker`" in waiting
    assert re.search(r"Next retry or take-over: .* UTC: due, and no worker is alive", waiting)

    worker = Worker(tmp_path, "--workers", "1")
    try:
        worker.wait_for(lambda: delivery_states(digest_id) == {"sent": 6}, "the digest sent")
        worker.wait_for(lambda: "idle" in cli("status").output, "an idle heartbeat")
        alive = cli("status").output
        worker.process.send_signal(signal.SIGKILL)  # no goodbye: its last beat stays behind
        worker.process.wait(timeout=10)
        dead = cli("status").output
    finally:
        worker.stop()

    assert "Workers: 1 alive." in alive
    pid = worker.process.pid
    line = rf":{pid}: 1 thread\(s\), runs the schedule, up \d+ s, last beat \d s ago: idle"
    assert re.search(line, alive), alive
    assert "no worker is alive" not in alive
    assert "Workers: none alive." in dead  # at once, not three beats later


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_run_hands_the_job_over_and_returns_at_once_even_with_no_worker(
    cli, readers, redis_tasks, own_redis
):
    started = time.monotonic()
    queued = cli("run")
    assert time.monotonic() - started < 5
    assert "The daily job is queued for the workers" in queued.output
    assert (
        "Warning: 1 task(s) waiting and no worker is alive: start `newsletter worker`"
        in queued.output
    )
    assert [task.name for task in redis_tasks.huey.pending()] == ["daily_job"]

    own_redis.stop()
    refused = cli("run", ok=False)
    assert refused.exit_code == 5  # the queue's exit status
    (line,) = refused.output.strip().splitlines()
    assert line.startswith("Error: the daily job was not queued: ")
    assert f"Redis at 127.0.0.1:{own_redis.port} (Connection refused)" in line
    status = cli("status", ok=False)
    assert status.exit_code == 5
    where = f"Redis 127.0.0.1:{own_redis.port} unreachable (Connection refused)"
    assert f"Queue: {where}: tasks and workers cannot be seen." in status.output
    assert "No digest yet." in status.output  # and the rest is shown all the same
    assert "Traceback" not in status.output
    assert time.monotonic() - started < 10


# --------------------------------------------------------------------------- waiting, in-process


@pytest.fixture
def backoff_clean() -> Iterator[None]:
    """The process's shared backoff and stop flag as a worker starts with them, before and
    after (a test's part left down would make the next test's waits start at the long step)."""
    from newsletter.worker.outages import BACKOFF, STOPPING

    STOPPING.clear()
    try:
        yield
    finally:
        for line in BACKOFF.current():
            BACKOFF.back(re.split(r" (?:unreachable|busy|read-only) \(", line)[0])
        STOPPING.clear()


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `call` in a thread; its result or its exception lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {seconds:.0f} s")
        time.sleep(0.05)


def down_now(part: str) -> bool:
    from newsletter.worker.outages import BACKOFF

    return any(line.startswith(f"{part} ") for line in BACKOFF.current())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_part_that_answers_with_another_error_is_back_all_the_same(
    quick, own_redis, backoff_clean, monkeypatch, caplog
):
    from newsletter.worker.outages import keep_trying

    settings = set_env(monkeypatch, redis_url=own_redis.url)
    part = f"Redis 127.0.0.1:{own_redis.port}"
    client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1)
    own_redis.stop()
    try:
        # A command Redis refuses once it answers: an error of ours, not an outage.
        thread, outcome = in_thread(
            lambda: keep_trying(settings, lambda: client.execute_command("NO-SUCH-COMMAND"))
        )
        wait_until(lambda: down_now(part), "wait for Redis")
        own_redis.start()
        thread.join(timeout=2 * CAP + 5)
    finally:
        client.close()

    (error,) = outcome
    assert isinstance(error, redis.ResponseError)  # raised as it came
    assert not down_now(part)  # `status` no longer shows the worker waiting for it
    assert re.search(rf"{re.escape(part)} is back after \d+ s", caplog.text)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_daily_job_s_reads_of_the_database_wait_out_an_outage(
    cli, quick, backoff_clean, settings, monkeypatch
):
    tasks = load_tasks()
    cli("topics", "list")  # the schema, and no topic yet
    direct = make_url(settings.database_url).render_as_string(hide_password=False)
    relay = TcpRelay((make_url(direct).host, make_url(direct).port or 5432)).start()
    relayed = make_url(direct).set(host="127.0.0.1", port=relay.port)
    part = f"PostgreSQL 127.0.0.1:{relay.port}"

    def waited_out(step: Callable[[], object]) -> list[object]:
        """`step`'s outcome, run while PostgreSQL refuses connections, which it then takes."""
        set_env(monkeypatch, database_url=relayed.render_as_string(hide_password=False))
        relay.stop()
        thread, outcome = in_thread(step)
        wait_until(lambda: down_now(part), "wait for PostgreSQL")
        relay.start()
        thread.join(timeout=2 * CAP + 5)
        set_env(monkeypatch, database_url=direct)
        return outcome

    try:
        idle = waited_out(tasks.daily_job.call_local)  # its first read: is there anything to do?
        cli("topics", "add", "SLAM", "-k", "slam")
        cli("subscribers", "add", READERS[0], "-t", "SLAM")
        store_papers(get_settings(), "SLAM", paper(1))
        digest_id, _translation = send.build(get_settings(), get_settings().today())
        batches = waited_out(lambda: tasks.queue_delivery(get_settings(), digest_id))
    finally:
        relay.stop()

    # The reads' results, not the database's errors (each of which Huey would have retried
    # after 30 s, 20 times at most).
    (summary,) = idle
    assert isinstance(summary, dict), summary
    assert "there are no topics yet" in summary["nothing_to_do"]
    assert batches == [1]


# --------------------------------------------------------------------------- the sweeper


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_after_a_part_comes_back_the_sweeper_lets_the_other_workers_beat_first(
    quick, own_redis, backoff_clean, monkeypatch
):
    from newsletter.worker.heartbeat import LIVE_BEATS
    from newsletter.worker.outages import STOPPING, keep_trying

    settings = set_env(monkeypatch, redis_url=own_redis.url, recovery_interval="60")
    tasks = load_tasks()
    sweeps: list[tuple[float, bool]] = []

    def sweep(settings, *, periodic: bool) -> None:  # what the sweeper does, and when
        sweeps.append((time.monotonic(), periodic))

    consumer = tasks.HealingConsumer(tasks.huey, settings=settings, sweep=sweep, periodic=True)
    sweeper = threading.Thread(target=consumer._sweep, daemon=True)
    sweeper.start()
    try:
        wait_until(lambda: len(sweeps) == 1, "sweep as the worker starts")
        own_redis.stop()  # and back: the other workers' beats in it have lapsed meanwhile
        client = redis.Redis.from_url(own_redis.url, socket_connect_timeout=1)
        thread, _outcome = in_thread(lambda: keep_trying(settings, client.ping))
        wait_until(lambda: down_now(f"Redis 127.0.0.1:{own_redis.port}"), "wait for Redis")
        own_redis.start()
        thread.join(timeout=2 * CAP + 5)
        back_at = time.monotonic()
        client.close()
        wait_until(lambda: len(sweeps) == 2, "sweep after Redis came back")
    finally:
        STOPPING.set()
        sweeper.join(timeout=5)
        monkeypatch.delenv("NEWSLETTER_REDIS_URL")
        set_env(monkeypatch)
        load_tasks()  # the default queue again: a later test's `status` must not meet this Redis

    (_started, first), (swept_at, second) = sweeps
    assert (first, second) == (False, True)  # as the worker starts, then a periodic one
    # Not at once, when the others' digests would look forgotten: after they could beat again,
    # and not a whole recovery interval later either.
    beats = LIVE_BEATS * settings.heartbeat_interval
    assert beats - 0.1 <= swept_at - back_at < beats + 1.5, swept_at - back_at


# --------------------------------------------------------------------------- heartbeats


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_redis_a_worker_is_alive_while_its_key_lives_whatever_its_clock_says(
    settings, own_redis, monkeypatch, tmp_path
):
    from newsletter.processes import pid_namespace
    from newsletter.worker.heartbeat import Beat, FileBeats, RedisBeats, live_workers

    hour_behind = time.time() - 3600
    elsewhere = Beat("elsewhere", 42, 1, True, hour_behind, hour_behind, 10.0)
    killed_here = Beat(
        socket.gethostname(), ended_pid(), 1, False, time.time(), time.time(), 10.0,
        pid_namespace=pid_namespace(),
    )  # fmt: skip

    settings = set_env(monkeypatch, redis_url=own_redis.url)
    store = RedisBeats(own_redis.url)
    store.put(elsewhere)
    store.put(killed_here)
    on_redis = [beat.name for beat in live_workers(settings)]

    monkeypatch.delenv("NEWSLETTER_REDIS_URL")
    settings = set_env(monkeypatch)
    FileBeats(settings.var_dir / "workers").put(elsewhere)  # one machine, one clock
    in_files = [beat.name for beat in live_workers(settings)]

    assert on_redis == ["elsewhere:42"]  # its key lives: Redis' clock says so
    assert in_files == []


def ended_pid() -> int:
    """The pid of a process of this machine that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
