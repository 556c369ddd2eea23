"""Heartbeats: which workers are alive, and what each is doing.

Every `newsletter worker` beats every NEWSLETTER_HEARTBEAT_INTERVAL seconds: its host and pid,
its threads, whether it runs the schedule, when it started, what each busy thread is doing,
and which parts (Redis, the database, the SMTP relay) it finds down. A worker is alive while
its last beat is under three intervals old (and, on this machine, while its process runs);
`newsletter status` lists those, and says so when tasks wait and none is.

Where beats live: with NEWSLETTER_REDIS_URL, in Redis beside the queue, one key per worker
that expires three intervals after its last beat, and a worker is alive while its key exists:
a worker killed without a word drops out by itself, on Redis' clock, whatever the machines'
clocks say. Otherwise one small JSON file per worker under the var folder, which the embedded
default's one machine shares with the command line, read by that machine's clock. Neither
needs the database, so a worker still shows, and says what is down, while the database is
away.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from newsletter.config import Settings
from newsletter.processes import pid_namespace, process_is_gone

log = logging.getLogger(__name__)

LIVE_BEATS = 3
"""A worker whose last beat is older than this many intervals is taken for dead."""
KEY_PREFIX = "newsletter:worker:"


@dataclass
class Beat:
    host: str
    pid: int
    threads: int
    periodic: bool
    started: float
    beat: float
    interval: float
    doing: list[str] = field(default_factory=list)
    """What each busy thread is running: "deliver(12)", "daily_job()"."""
    delivering: list[int] = field(default_factory=list)
    """The digests its `deliver` tasks are sending now."""
    down: list[str] = field(default_factory=list)
    """The parts it finds down: "SMTP relay …:587 unreachable (Connection refused) since …"."""
    pid_namespace: int = 0

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"

    def gone(self) -> bool:
        """Killed on this machine: no need to wait for its beats to lapse."""
        return process_is_gone(self.host, self.pid, self.pid_namespace)

    def young(self, now: float | None = None) -> bool:
        """Whether its last beat is recent, by this machine's clock (for beats that only this
        machine writes: the file beats)."""
        now = time.time() if now is None else now
        return now - self.beat <= LIVE_BEATS * self.interval


def _from_json(data: bytes | str) -> Beat | None:
    try:
        values = json.loads(data)
        known = {name: values[name] for name in Beat.__dataclass_fields__ if name in values}
        return Beat(**known)
    except (ValueError, TypeError):
        return None  # a beat written by another version, or half-written: not ours to read


class RedisBeats:
    """One key per worker in Redis, expiring three intervals after its last beat."""

    def __init__(self, url: str) -> None:
        # Short timeouts: `newsletter status` must answer even when Redis does not.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)

    def put(self, beat: Beat) -> None:
        ttl = max(1, math.ceil(LIVE_BEATS * beat.interval))
        self.client.set(KEY_PREFIX + beat.name, json.dumps(asdict(beat)), ex=ttl)

    def remove(self, beat: Beat) -> None:
        self.client.delete(KEY_PREFIX + beat.name)

    def all(self) -> list[Beat]:
        keys = list(self.client.scan_iter(match=KEY_PREFIX + "*", count=500))
        values = self.client.mget(keys) if keys else []
        return [beat for value in values if value and (beat := _from_json(value))]

    def live(self) -> list[Beat]:
        # A key lives while its worker beats, on Redis' clock: the beat's own time was taken by
        # another machine's clock, which may be minutes off this one's.
        return [beat for beat in self.all() if not beat.gone()]


class FileBeats:
    """One JSON file per worker in a folder (the embedded default: one machine)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, beat: Beat) -> Path:
        return self.folder / f"{re.sub(r'[^A-Za-z0-9.-]', '_', beat.host)}-{beat.pid}.json"

    def put(self, beat: Beat) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(beat)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(beat)), encoding="utf-8")
        os.replace(partial, path)  # a reader sees the old beat or the new, never half of one

    def remove(self, beat: Beat) -> None:
        self._path(beat).unlink(missing_ok=True)

    def all(self) -> list[Beat]:
        beats = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                beat = _from_json(path.read_text(encoding="utf-8"))
            except OSError:
                continue
            if beat is None:
                continue
            if time.time() - beat.beat > 86_400:
                path.unlink(missing_ok=True)  # a worker killed long ago: its file goes too
                continue
            beats.append(beat)
        return beats

    def live(self) -> list[Beat]:
        return [beat for beat in self.all() if beat.young() and not beat.gone()]


def beat_store(settings: Settings) -> RedisBeats | FileBeats:
    if settings.redis_url is not None:
        return RedisBeats(settings.redis_url.get_secret_value())
    return FileBeats(settings.var_dir / "workers")


def live_workers(settings: Settings) -> list[Beat]:
    """The workers alive now, by name; raises Redis' error when Redis does not answer."""
    return sorted(beat_store(settings).live(), key=lambda beat: beat.name)


def idle_queue_warning(waiting: int, workers: list[Beat]) -> str | None:
    """The sentence `status` and `run` print when tasks wait and nobody will take them."""
    if waiting and not workers:
        return f"{waiting} task(s) waiting and no worker is alive: start `newsletter worker`"
    return None


# ---------------------------------------------------------------- this process


class Activity:
    """What each thread of this process is running (a stack: immediate mode nests tasks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, list[tuple[str, int | None]]] = {}

    def start(self, label: str, digest_id: int | None = None) -> None:
        with self._lock:
            self._running.setdefault(threading.get_ident(), []).append((label, digest_id))

    def end(self) -> None:
        with self._lock:
            stack = self._running.get(threading.get_ident())
            if stack:
                stack.pop()
            if not stack:
                self._running.pop(threading.get_ident(), None)

    def now(self) -> tuple[list[str], list[int]]:
        """(what each busy thread runs, the digests being delivered)."""
        with self._lock:
            current = [stack[-1] for stack in self._running.values() if stack]
        labels = [label for label, _digest in current]
        digests = sorted({digest for _label, digest in current if digest is not None})
        return labels, digests


ACTIVITY = Activity()


class Heart:
    """This process's heartbeat, written by the worker's heartbeat thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        threads: int,
        periodic: bool,
        down: Callable[[], list[str]] = list,
    ) -> None:
        self.store = beat_store(settings)
        self.interval = settings.heartbeat_interval
        self.threads = threads
        self.periodic = periodic
        self.down = down
        self.started = time.time()
        self.failing = False

    def current(self) -> Beat:
        doing, delivering = ACTIVITY.now()
        return Beat(
            host=socket.gethostname(),
            pid=os.getpid(),
            threads=self.threads,
            periodic=self.periodic,
            started=self.started,
            beat=time.time(),
            interval=self.interval,
            doing=doing,
            delivering=delivering,
            down=self.down(),
            pid_namespace=pid_namespace(),
        )

    def beat(self) -> None:
        """Write a beat; a beat that cannot be written (Redis down) is skipped: the parts the
        worker waits for are logged by the threads that wait for them."""
        try:
            self.store.put(self.current())
        except (redis.RedisError, OSError) as error:
            if not self.failing:
                log.debug("heartbeat not written: %s", error)
            self.failing = True
            return
        self.failing = False

    def stop(self) -> None:
        """Leave the list of live workers at once (a graceful stop)."""
        try:
            self.store.remove(self.current())
        except (redis.RedisError, OSError):
            pass  # it expires by itself
