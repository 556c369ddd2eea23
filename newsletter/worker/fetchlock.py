"""One fetch at a time across every worker, and a lock that a killed worker cannot keep.

arXiv asks for one request at a time from all of a site's machines, so the daily job's fetch
runs under a lock. Huey's own task lock is a key set without expiry: a worker killed while
fetching left it set for good, and every later daily job failed on it. This one cannot
outlive its holder:

- with NEWSLETTER_REDIS_URL (workers on several machines), a Redis key set only if absent,
  naming its holder, expiring three heartbeat intervals after it was last renewed; the holder
  renews it every interval while it fetches and deletes it, if still its own, when done;
- otherwise (the embedded default: one machine), an exclusive `flock` on a file in the var
  folder, which the kernel releases the moment its process ends, however it ends.

A daily job that finds the lock held raises Huey's TaskLockedException, and Huey retries it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from huey.exceptions import TaskLockedException

from newsletter.config import Settings
from newsletter.worker.heartbeat import LIVE_BEATS

KEY = "newsletter:fetch-lock"
FILE = "fetch.lock"

# Renew or delete the key only while it is still ours: another worker may hold it by now.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"  # noqa: E501
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"  # noqa: E501
)


@contextmanager
def fetch_lock(settings: Settings) -> Iterator[None]:
    """Hold the fetch lock for the block; TaskLockedException when another process has it."""
    if settings.redis_url is None:
        with _file_lock(settings):
            yield
    else:
        with _redis_lock(settings.redis_url.get_secret_value(), settings.heartbeat_interval):
            yield


@contextmanager
def _file_lock(settings: Settings) -> Iterator[None]:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(settings.var_dir / FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TaskLockedException("another process is fetching from arXiv") from None
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


@contextmanager
def _redis_lock(url: str, interval: float) -> Iterator[None]:
    # Timeouts: a Redis that stops answering fails the job (Huey retries it) rather than hang it.
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    ttl_ms = int(LIVE_BEATS * interval * 1000)
    try:
        if not client.set(KEY, owner, nx=True, px=ttl_ms):
            holder = client.get(KEY)
            shown = holder.decode(errors="replace") if holder else "another worker"
            raise TaskLockedException(f"{shown} is fetching from arXiv")
        stop = threading.Event()
        renewer = threading.Thread(
            target=_renew_until, args=(client, owner, ttl_ms, interval, stop), daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=interval + 10)  # a renewal caught in a timeout ends by then
            try:
                client.eval(_RELEASE, 1, KEY, owner)
            except redis.RedisError:
                pass  # Redis is away: the key expires by itself
    finally:
        client.close()


def _renew_until(
    client: redis.Redis, owner: str, ttl_ms: int, interval: float, stop: threading.Event
) -> None:
    while not stop.wait(interval):
        try:
            client.eval(_RENEW, 1, KEY, owner, ttl_ms)
        except redis.RedisError:
            pass  # renewed at the next interval if Redis is back by then; else it lapses
