"""A send rate that holds across every worker: messages are paced, one slot each.

Each message reserves the next free slot (`interval = 1 / rate` after the previous one) and
waits for it. With Redis the slot counter lives in Redis and its clock is Redis' own, so any
number of workers on any number of machines share one pace; without Redis it is shared by the
threads of this process. Pacing, unlike a window counter (what rate-limit libraries offer),
never lets a burst through at the start of each window, which is what mail relays punish.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

import redis

from newsletter.delivery.outgoing import Outgoing, SendResult, Transport

# Reserve the next slot atomically: slot = max(now, next); next = slot + interval.
# Times are microseconds on Redis' clock, so machines with skewed clocks still agree.
RESERVE = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local next_us = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now_us, next_us)
redis.call('SET', KEYS[1], slot + tonumber(ARGV[1]), 'PX', 60000)
return slot - now_us
"""


class SendPace:
    """Call `wait()` before each message; it returns once this message's slot has come."""

    def __init__(
        self,
        per_second: float,
        redis_url: str | None = None,
        key: str = "newsletter:send-pace",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0:
            raise ValueError("a send rate must be positive (0 means unlimited: use no pace)")
        self.interval = 1.0 / per_second
        self.key = key
        self.sleep = sleep
        self.clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._reserve = None
        if redis_url:
            self._reserve = redis.Redis.from_url(redis_url).register_script(RESERVE)

    def wait(self) -> None:
        delay = self._shared_delay() if self._reserve is not None else self._local_delay()
        if delay > 0:
            self.sleep(delay)

    def _shared_delay(self) -> float:
        microseconds = self._reserve(keys=[self.key], args=[int(self.interval * 1_000_000)])
        return int(microseconds) / 1_000_000

    def _local_delay(self) -> float:
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now


class PacedTransport:
    """Another transport, each message waiting for its slot under NEWSLETTER_SEND_RATE."""

    def __init__(self, inner: Transport, pace: SendPace) -> None:
        self.inner = inner
        self.pace = pace

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        return self.inner.send(self._paced(messages))

    def _paced(self, messages: Iterable[Outgoing]) -> Iterator[Outgoing]:
        for outgoing in messages:
            self.pace.wait()
            yield outgoing

    def close(self) -> None:
        self.inner.close()
