"""`newsletter worker`'s Huey consumer, made to heal itself.

Huey's own consumer logs a traceback for every failed read while Redis is down (thousands a
minute, for ever), and whatever is enqueued meanwhile is lost. This one differs in three ways:

- Huey's worker and scheduler loops reach the queue through `PatientStorage`: every call that
  meets an outage is tried again after the shared backoff of `outages` (one log line a step,
  one when the part is back). The loops wait instead of storming, and what the worker enqueues
  meanwhile (a retry, the daily job's next step, a delivery's successor) waits to be enqueued
  rather than being lost.
- A heartbeat thread says every NEWSLETTER_HEARTBEAT_INTERVAL seconds that the worker is alive
  and what it is doing (see `heartbeat`).
- A sweeper thread calls `sweep` when the worker starts, and, on the worker that runs the
  schedule, every NEWSLETTER_RECOVERY_INTERVAL seconds and as soon as a part comes back:
  the sweep queues what no task is working on (see `tasks.sweep`), so that whatever was lost
  (a Redis that restarted empty, a worker killed mid-send) is found again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from huey.consumer import Consumer

from newsletter.config import Settings
from newsletter.heartbeat import Heart
from newsletter.outages import BACKOFF, STOPPING, Stopped, keep_trying

log = logging.getLogger(__name__)


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


class HealingConsumer(Consumer):
    """Huey's consumer over a `PatientStorage`, with a heartbeat and a sweeper."""

    def __init__(
        self, huey: Any, *, settings: Settings, sweep: Callable[[Settings], object], **options
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
        while not STOPPING.is_set():
            BACKOFF.recovered.clear()
            try:
                keep_trying(self.settings, partial(self.sweep, self.settings))
            except Stopped:
                return
            except Exception:  # a fault of ours: said once, and looked at again next time
                log.exception("the sweep for unfinished deliveries failed")
            if not self.periodic:
                return  # the others sweep once, when they start: one sweeper a minute is enough
            waited = 0.0
            while waited < interval and not BACKOFF.recovered.is_set():
                if STOPPING.wait(0.5):
                    return
                waited += 0.5
