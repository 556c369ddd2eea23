"""NEWSLETTER_SEND_RATE: messages are paced, and the pace holds across workers through Redis."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from newsletter.config import get_settings
from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.outgoing import Outgoing
from newsletter.delivery.pacing import PacedTransport, SendPace
from newsletter.delivery.transports import transport_from_settings
from newsletter.message.compose import compose
from tests.helpers import set_env


def test_a_local_pace_gives_each_message_its_own_slot():
    delays: list[float] = []
    # 50 ms apart; neither the fake sleep nor the fake clock moves time on.
    pace = SendPace(20, sleep=delays.append, clock=lambda: 100.0)
    for _ in range(5):
        pace.wait()
    assert len(delays) == 4  # the first message goes at once
    assert delays == pytest.approx([0.05, 0.10, 0.15, 0.20])


def test_workers_share_one_pace_through_redis(redis_url):
    key = f"test:pace:{uuid.uuid4().hex}"
    rate = 40  # 25 ms apart
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        pace = SendPace(rate, redis_url, key=key)  # its own connection, as another worker has
        for _ in range(10):
            pace.wait()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    stamps.sort()
    assert len(stamps) == 30
    # 30 messages from three workers took at least 29 intervals: the pace was shared, not
    # one per worker (which would have let them through three times as fast).
    assert stamps[-1] - stamps[0] >= 29 / rate * 0.9


def test_the_setting_paces_the_transport(settings, monkeypatch, tmp_path):
    set_env(monkeypatch, send_rate="50")
    transport = transport_from_settings(get_settings())
    assert isinstance(transport, PacedTransport)
    waits: list[float] = []
    transport.pace.sleep = waits.append
    transport.pace.clock = lambda: 100.0  # time stands still: the waits are the slots alone
    messages = [
        Outgoing.of(
            n,
            compose(
                sender="d@example.org",
                to=f"r{n}@example.org",
                subject="s",
                html="<p>h</p>",
                text="t",
                message_id=f"<m{n}@example.org>",
                list_id="l <l.example.org>",
                unsubscribe_url="https://x/u",
                unsubscribe_mailto="mailto:d@example.org",
            ),
        )
        for n in range(3)
    ]
    results = list(transport.send(messages))
    assert [r.ok for r in results] == [True, True, True]
    assert waits == pytest.approx([0.02, 0.04])
    assert isinstance(transport.inner, OutboxTransport)


def test_no_rate_means_no_pace(settings):
    assert not isinstance(transport_from_settings(get_settings()), PacedTransport)
