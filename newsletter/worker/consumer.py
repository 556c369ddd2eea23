"""`newsletter worker`'s Huey consumer, made to heal itself.

Huey's own consumer logs a traceback for every failed read while Redis is down (thousands a
minute, for ever), and whatever is enqueued meanwhile is lost. This one differs in three ways:

- Huey's worker and scheduler loops reach the queue through `PatientStorage`: every call that
  meets an outage is tried again after the shared backoff of `outages` (one log line a step,
  one when the part is back). The loops wait instead of storming, and what the worker enqueues
  meanwhile (a retry, the daily job's next step, a delivery's successor) waits to be enqueued
  rather than being lost.
- Its scheduler checks the periodic tasks for every minute since the last it checked (see
  `CatchingUpScheduler`): a daily job whose minute fell while the queue was away runs once
  the queue is back, instead of never.
- A heartbeat thread says every NEWSLETTER_HEARTBEAT_INTERVAL seconds that the worker is alive
  and what it is doing (see `heartbeat`).
- A sweeper thread calls `sweep` when the worker starts, and, on the worker that runs the
  schedule, every NEWSLETTER_RECOVERY_INTERVAL seconds and soon after a part comes back:
  the sweep queues what no task is working on (see `tasks.sweep`), so that whatever was lost
  (a Redis that restarted empty, a worker killed mid-send) is found again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from huey.consumer import Consumer, Scheduler

from newsletter.config import Settings
from newsletter.worker.heartbeat import LIVE_BEATS, Heart
from newsletter.worker.outages import BACKOFF, STOPPING, Stopped, keep_trying

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
CATCH_UP = timedelta(hours=24)
"""How far back the scheduler looks for the minutes it missed: a day's schedule."""


class PatientStorage:
    """A Huey storage whose every call waits out outages (see `outages.keep_trying`).

    Asked to stop while waiting, the two calls Huey's loops make give "nothing" (no task to
    run, no scheduled task due), so that the loops end as they do when the queue is idle.
    """

    WHEN_STOPPED: dict[str, Callable[[], Any]] = {"dequeue": lambda: None, "read_schedule": list}

    def __init__(self, storage: Any, settings: Settings) -> None:
        self.storage = storage
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.storage, name)
        if not callable(value) or name.startswith("_"):
            return value

        def patient(*args: Any, **kwargs: Any) -> Any:
            return keep_trying(
                self.settings,
                partial(value, *args, **kwargs),
                on_stop=self.WHEN_STOPPED.get(name),
            )

        return patient


class CatchingUpScheduler(Scheduler):
    """Huey's scheduler, checking the periodic tasks for each minute since the last it checked.

    Huey's checks the current minute once a minute and skips the minutes it missed: those it
    spent blocked (here: `PatientStorage` waiting for Redis or the queue's file), and now and
    then one that its 60-second steps straddle. A daily job whose minute fell in an outage
    would then not run that day. This one checks every minute since the last checked (the last
    CATCH_UP at most) and enqueues each periodic task due in any of them once: a task missed
    several times (the inbox read, every few minutes) runs once, not once per slot.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # As if the minute before the worker started had been checked: its first check covers
        # the minute it started in, even when the queue is away by then.
        started = self.huey._get_timestamp().replace(second=0, microsecond=0)
        self.last_checked: datetime = started - MINUTE

    def enqueue_periodic_tasks(self, now: datetime | None) -> None:
        # Huey's, over the minutes missed: `now` as `read_periodic` would take it (naive UTC).
        self._logger.debug("Checking periodic tasks")
        for task in self.due(now or self.huey._get_timestamp()):
            self._logger.info("Enqueueing periodic task %s.", task)
            try:
                self.huey.enqueue(task)
            except Exception:
                self._logger.exception("Error enqueueing periodic task %s.", task)

    def due(self, now: datetime) -> list[Any]:
        """The periodic tasks due in a minute from the one after the last checked to `now`'s,
        each once; that minute is the last checked from then on."""
        minute = now.replace(second=0, microsecond=0)
        last = self.last_checked
        if minute < last - CATCH_UP:
            last = minute - MINUTE  # the clock was set back more than a day: start from now
        # A clock set back less checks nothing until it is past the last minute checked again:
        # no minute is checked twice (the daily job would run twice).
        moment = max(last + MINUTE, minute - CATCH_UP + MINUTE)
        tasks: dict[str, Any] = {}
        while moment <= minute:
            for task in self.huey.read_periodic(moment):
                tasks.setdefault(task.name, task)
            moment += MINUTE
        self.last_checked = max(last, minute)
        return list(tasks.values())


class HealingConsumer(Consumer):
    """Huey's consumer over a `PatientStorage`, with a catching-up scheduler, a heartbeat and a
    sweeper."""

    def __init__(
        self, huey: Any, *, settings: Settings, sweep: Callable[..., object], **options
    ) -> None:
        if not isinstance(huey.storage, PatientStorage):
            huey.storage = PatientStorage(huey.storage, settings)
        super().__init__(huey, **options)
        self.settings = settings
        self.sweep = sweep
        self.heart = Heart(
            settings, threads=self.workers, periodic=self.periodic, down=BACKOFF.current
        )
        self.helpers: list[threading.Thread] = []

    def _create_scheduler(self) -> CatchingUpScheduler:
        # Huey's hook for a scheduler of one's own, called by its __init__.
        return CatchingUpScheduler(
            huey=self.huey,
            stop_flag=self.stop_flag,
            interval=self.scheduler_interval,
            periodic=self.periodic,
        )

    def start(self) -> None:
        STOPPING.clear()
        super().start()
        self.heart.beat()  # alive from the first moment, before any task runs
        for name, loop in (("Heartbeat", self._beat), ("Sweeper", self._sweep)):
            thread = threading.Thread(target=loop, name=name, daemon=True)
            thread.start()
            self.helpers.append(thread)

    def stop(self, graceful: bool = False) -> None:
        STOPPING.set()  # every wait for a part to come back ends now
        super().stop(graceful)
        for thread in self.helpers:
            thread.join(timeout=5)
        self.heart.stop()

    def _beat(self) -> None:
        while not STOPPING.wait(self.settings.heartbeat_interval):
            self.heart.beat()

    def _sweep(self) -> None:
        interval = self.settings.recovery_interval
        periodic = False  # the first sweep, as the worker starts
        while not STOPPING.is_set():
            BACKOFF.recovered.clear()
            try:
                keep_trying(self.settings, partial(self.sweep, self.settings, periodic=periodic))
            except Stopped:
                return
            except Exception:  # a fault of ours: said once, and looked at again next time
                log.exception("the sweep for unfinished deliveries failed")
            if not self.periodic:
                return  # the others sweep once, when they start: one sweeper a minute is enough
            periodic = True
            waited = 0.0
            while waited < interval and not BACKOFF.recovered.is_set():
                if STOPPING.wait(0.5):
                    return
                waited += 0.5
            if BACKOFF.recovered.is_set():
                # The other workers could not beat either while the part was away (their beats
                # in Redis have lapsed): until they have beaten again, the digests they are
                # sending would look forgotten.
                if STOPPING.wait(LIVE_BEATS * self.settings.heartbeat_interval):
                    return
