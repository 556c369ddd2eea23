"""Redis, the database or the SMTP relay down: wait and try again, one log line per wait.

A worker meets an outage in several threads at once (each Huey worker thread, the scheduler,
the sweeper), and a traceback per failed try fills a disk in an afternoon. So the threads of a
process share one `Backoff`: per part that is down, the waits grow (1 s, 2 s, 4 s … up to
NEWSLETTER_RECOVERY_INTERVAL), the log gets one line per step however many threads wait

    SMTP relay mail.example.org:587 unreachable (Connection refused); retrying in 8 s

and one line when the part answers again. A wait ends at once when the worker is asked to stop.

What is an outage: Redis refusing or dropping connections, a database connection that cannot
be made or was lost (SQLite: locked past its busy timeout), and an SMTP relay that cannot be
used at all (`DeliveryError`: refused, TLS or AUTH failing). A message the relay refuses is no
outage: `delivery` records it against its row.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import redis
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from newsletter.config import Settings, redis_where
from newsletter.db import is_busy, server_where
from newsletter.delivery.smtp import parse_smtp_url
from newsletter.errors import DeliveryError, NewsletterError

T = TypeVar("T")

log = logging.getLogger(__name__)

STOPPING = threading.Event()
"""Set when the worker is asked to stop: every wait for a part to come back ends."""

FIRST_WAIT = 1.0


class Outage(NamedTuple):
    part: str
    """What is down, and where: "SMTP relay mail.example.org:587", "Redis 10.0.0.5:6379"."""
    reason: str
    """Why, in the words of the system that said so: "Connection refused"."""
    state: str = "unreachable"

    def line(self) -> str:
        return f"{self.part} {self.state} ({self.reason})"


class Stopped(NewsletterError):
    """The worker was asked to stop while waiting for a part to come back."""


def outage_of(error: BaseException, settings: Settings) -> Outage | None:
    """The outage `error` shows, or None when it is a fault of another kind."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return Outage(_redis_part(settings), _reason(error))
    if isinstance(error, redis.ReadOnlyError):  # a replica, until a failover makes it primary
        return Outage(_redis_part(settings), _reason(error), "read-only")
    if isinstance(error, DeliveryError):
        return Outage(_smtp_part(settings), _reason(error, after=": "))
    if isinstance(error, PoolTimeout):
        return Outage(_database_part(settings), "no free connection in the pool", "busy")
    if isinstance(error, DBAPIError):
        return _database_outage(error, settings)
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        return Outage(f"queue file {settings.huey_path}", str(error), "busy")  # SqliteHuey's
    return None


def _database_outage(error: DBAPIError, settings: Settings) -> Outage | None:
    part = _database_part(settings)
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        # A file on this machine: never away, only locked by another writer for too long.
        return Outage(part, _reason(error.orig), "busy") if is_busy(error) else None
    if error.connection_invalidated or isinstance(error, OperationalError | InterfaceError):
        return Outage(part, _reason(error.orig), "busy" if is_busy(error) else "unreachable")
    return None  # a statement the server refused: a fault, not an outage


def _reason(error: BaseException | None, after: str = "") -> str:
    """The operating system's words when a socket failed, else the error's first line (its
    last clause: "connection to server … failed: Connection refused" → "Connection refused")."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    lines = str(error).strip().splitlines() or [type(error).__name__]
    text = lines[0].strip().rstrip(".")
    if after and after in text:
        text = text.rsplit(after, 1)[1]
    return text.rsplit(": ", 1)[-1] or type(error).__name__


def _redis_part(settings: Settings) -> str:
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return f"Redis {redis_where(url)}"


def _smtp_part(settings: Settings) -> str:
    url = settings.smtp_url.get_secret_value() if settings.smtp_url else ""
    return f"SMTP relay {parse_smtp_url(url).where}" if url.strip() else "the mail transport"


def _database_part(settings: Settings) -> str:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database}"
    name = "PostgreSQL" if url.get_backend_name() == "postgresql" else url.get_backend_name()
    return f"{name} {server_where(url)}"


# ---------------------------------------------------------------- waiting, shared by threads


@dataclass
class _Down:
    outage: Outage
    since: float  # time.time(), for people
    wait: float = 0.0
    retry_at: float = 0.0  # time.monotonic()


class Backoff:
    """The parts this process finds down, and when each is to be tried again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, _Down] = {}
        self.recovered = threading.Event()
        """Set whenever a part comes back (the sweeper then looks for what was left undone)."""

    def wait(self, outage: Outage, longest: float, stop: threading.Event) -> bool:
        """Wait before trying `outage.part` again; False if asked to stop meanwhile.

        The first thread to fail after a step has ended starts the next step and logs it; the
        others fail into the step already running and wait for its end, silently.
        """
        now = time.monotonic()
        with self._lock:
            down = self._down.get(outage.part)
            if down is None:
                down = self._down[outage.part] = _Down(outage, time.time())
            down.outage = outage
            if now >= down.retry_at:
                down.wait = FIRST_WAIT if not down.wait else min(down.wait * 2, longest)
                down.retry_at = now + down.wait
                log.warning("%s; retrying in %s", outage.line(), seconds(down.wait))
            pause = down.retry_at - now
        return not stop.wait(pause)

    def back(self, part: str) -> None:
        """`part` answered: say so once, and start from the first step next time."""
        with self._lock:
            down = self._down.pop(part, None)
        if down is not None:
            log.warning("%s is back after %s", part, seconds(time.time() - down.since))
            self.recovered.set()

    def current(self) -> list[str]:
        """What is down now, for the heartbeat: "<part> unreachable (<reason>) since 10:02:03"."""
        with self._lock:
            downs = list(self._down.values())
        return [
            f"{down.outage.line()} since {time.strftime('%H:%M:%S', time.gmtime(down.since))} UTC"
            for down in downs
        ]


BACKOFF = Backoff()


def seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 1 or value == 0 else f"{value:.1f} s"


def keep_trying(
    settings: Settings,
    call: Callable[[], T],
    *,
    stop: threading.Event = STOPPING,
    on_stop: Callable[[], T] | None = None,
) -> T:
    """`call()`'s result, tried again after each outage (see the module's docstring) until the
    part answers. Any other error is raised at once. Asked to stop while waiting: `on_stop()`,
    or `Stopped` raised when there is none."""
    waited: set[str] = set()
    while True:
        try:
            result = call()
        except Exception as error:
            outage = outage_of(error, settings)
            if outage is None:
                # The part answered, if only with an error of another kind: it is back (else
                # it would show "waiting … since" for good, and its next outage would start at
                # the longest step).
                for part in waited:
                    BACKOFF.back(part)
                raise
            log.debug("%s", outage.line(), exc_info=True)
            waited.add(outage.part)
            if not BACKOFF.wait(outage, settings.recovery_interval, stop):
                if on_stop is not None:
                    return on_stop()
                raise Stopped(f"stopped while {outage.line()}") from error
            continue
        for part in waited:
            BACKOFF.back(part)
        return result
