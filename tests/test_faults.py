"""Delivery when things go wrong: relays that refuse or drop, senders that race or die.

The relays are Postfix's smtp-sink (see `tests.smtp_sink`). smtp-sink plays one fault for as
long as it runs and cannot alternate (refuse once, then accept), so "the relay recovers" is a
new smtp-sink on the same port, started while the sender waits out its backoff: the sender
sees its connection dropped and a healthy relay behind it, as after a relay restart.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta

import pytest

from newsletter import store
from newsletter.daily import send as daily_send
from newsletter.db import session_scope
from newsletter.delivery.deliverer import Deliverer, DeliveryReport, deliver_all
from newsletter.delivery.outgoing import Outgoing, SendResult, Transport
from newsletter.delivery.smtp import SMTPTransport
from newsletter.models import DeliveryStatus, utcnow
from tests.helpers import add_subscribers, paper, set_env, store_papers, subscribe
from tests.smtp_sink import SmtpSink, SunkMessage

DAY = date(2026, 11, 27)
SMTP_TIMEOUT = 5.0


def build(settings, day: date = DAY) -> int:
    digest_id, _translation = daily_send.build(settings, day)
    return digest_id


def digest_of(settings, day: date = DAY) -> int:
    with session_scope(settings) as session:
        return store.digest_on(session, day).id


def deliveries(settings, digest_id: int) -> dict[str, tuple[str, int, str]]:
    """Recipient → (status, attempts, last reply) of each of the digest's delivery rows."""
    with session_scope(settings) as session:
        return {
            store.subscriber_by_id(session, row.subscriber_id).email: (
                row.status.value,
                row.attempts,
                row.detail,
            )
            for row in store.deliveries_of(session, digest_id)
        }


def subscriber_state(settings, email: str) -> tuple[str, int]:
    with session_scope(settings) as session:
        subscriber = store.get_subscriber(session, email)
        return subscriber.status.value, subscriber.bounce_count


def recipients(messages: Iterable[SunkMessage]) -> Counter[str]:
    return Counter(message.recipient for message in messages)


class RelayRecovers:
    """A `sleep` for `deliver_all`: the first wait for a backoff is when the relay comes back
    healthy (a new smtp-sink on the same port); each wait then really waits."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.naps: list[float] = []

    def __call__(self, seconds: float) -> None:
        if not self.naps:
            self.sink.replace()
        self.naps.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def readers(settings, cli, example_topics) -> list[str]:
    """Four subscribers of one topic with a paper in it: each gets one message per digest."""
    emails = add_subscribers(settings, "SLAM", 4)
    store_papers(settings, "SLAM", paper(1))
    return emails


# --------------------------------------------------------------------------- what relays say


def test_a_soft_reject_is_retried_after_its_backoff_and_delivered_once(
    settings, readers, monkeypatch
):
    settings = set_env(monkeypatch, smtp_retry_backoff="1")
    digest_id = build(settings)
    with SmtpSink("-r", "DATA") as sink, SMTPTransport(sink.url, SMTP_TIMEOUT) as transport:
        recovers = RelayRecovers(sink)

        report = deliver_all(settings, digest_id, transport, sleep=recovers)

        received = sink.messages()
    assert (report.sent, report.deferred, report.failed) == (4, 4, 0)
    assert recovers.naps  # it waited out the backoff, then retried
    assert recipients(received) == Counter(readers)
    for status, attempts, reply in deliveries(settings, digest_id).values():
        assert (status, attempts) == ("sent", 2) and reply.startswith("250 ")


HARD_REPLIES = {
    # smtp-sink's own hard reject, `-f RCPT`: not an unknown user, so counted
    "500 5.3.0": ((), "counted"),
    # a 550 with no enhanced status code: classified 5.0.0, counted
    "550 plain": (("-B", "550 Mailbox unavailable"), "counted"),
    # an unknown user: bounced at once
    "550 5.1.1": (("-B", "550 5.1.1 <ada@example.org>: Recipient address rejected"), "bounced"),
}


@pytest.mark.parametrize("reply", HARD_REPLIES)
def test_a_hard_reject_fails_at_once_with_the_reply_and_is_never_retried(
    cli, settings, example_topics, monkeypatch, reply
):
    options, outcome = HARD_REPLIES[reply]
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    with SmtpSink("-v", "-f", "RCPT", *options) as sink:
        settings = set_env(monkeypatch, smtp_url=sink.url, smtp_retry_backoff="0.01")

        result = cli("send", "--date", DAY.isoformat(), ok=False)

        tries = len(re.findall(r"rcpt TO:<ada@example\.org>", sink.output, re.IGNORECASE))
        received = sink.messages()
    assert result.exit_code == 1
    assert "0 sent, 1 failed, 0 to retry later" in result.output
    assert f"ada@example.org: {reply[:3]}" in result.output
    assert (tries, received) == (1, [])  # asked once, never again
    ((status, attempts, detail),) = deliveries(settings, digest_of(settings)).values()
    assert (status, attempts) == ("failed", 1) and detail.startswith(reply[:3])
    expected = ("bounced", 1) if outcome == "bounced" else ("active", 1)
    assert subscriber_state(settings, "ada@example.org") == expected


def test_three_hard_failures_bounce_an_address_and_it_is_skipped_from_then_on(
    cli, settings, example_topics, monkeypatch
):
    subscribe(cli, "ada@example.org", "SLAM")
    days = [DAY + timedelta(days=n) for n in range(4)]
    with SmtpSink("-f", "RCPT") as sink:  # 500 5.3.0: a hard failure, not an unknown user
        set_env(monkeypatch, smtp_url=sink.url)
        for number, day in enumerate(days[:3], 1):
            store_papers(settings, "SLAM", paper(number))
            result = cli("send", "--date", day.isoformat(), ok=False)
            assert "0 sent, 1 failed" in result.output
            expected = ("bounced", 3) if number == 3 else ("active", number)
            assert subscriber_state(settings, "ada@example.org") == expected, day

        subscribe(cli, "bo@example.org", "SLAM")
        store_papers(settings, "SLAM", paper(4))
        sink.replace()  # a relay that accepts everything
        result = cli("send", "--date", days[3].isoformat())

        received = sink.messages()
    assert "1 sent, 0 failed" in result.output
    assert recipients(received) == Counter(["bo@example.org"])
    assert set(deliveries(settings, digest_of(settings, days[3]))) == {"bo@example.org"}


def test_a_connection_dropped_in_data_is_retried_and_delivered_once(settings, readers, monkeypatch):
    settings = set_env(monkeypatch, smtp_retry_backoff="1")
    digest_id = build(settings)
    # -q DATA: the relay hangs up on DATA, before taking the content, and keeps nothing.
    with SmtpSink("-q", "DATA") as sink, SMTPTransport(sink.url, SMTP_TIMEOUT) as transport:
        recovers = RelayRecovers(sink)

        report = deliver_all(settings, digest_id, transport, sleep=recovers)

        received = sink.messages()
    assert (report.sent, report.deferred, report.failed) == (4, 4, 0)
    assert recovers.naps
    assert recipients(received) == Counter(readers)
    for status, attempts, _reply in deliveries(settings, digest_id).values():
        assert (status, attempts) == ("sent", 2)


def test_a_relay_that_hangs_up_after_keeping_a_message_makes_only_recognisable_copies(
    settings, readers, monkeypatch
):
    """`-q .`: the content arrives and is kept, and the relay hangs up instead of answering.

    The sender cannot know the message arrived, so it tries again (losing mail would be worse):
    the copies are duplicates a receiver recognises by their one Message-ID, and their number
    is bounded by the attempts.
    """
    settings = set_env(monkeypatch, smtp_retry_backoff="1")
    digest_id = build(settings)
    with SmtpSink("-q", ".") as sink, SMTPTransport(sink.url, SMTP_TIMEOUT) as transport:
        report = deliver_all(settings, digest_id, transport, sleep=RelayRecovers(sink))
        received = sink.messages()
    assert report.sent == 4
    rows = deliveries(settings, digest_id)
    with session_scope(settings) as session:
        message_ids = {
            store.subscriber_by_id(session, row.subscriber_id).email: row.message_id
            for row in store.deliveries_of(session, digest_id)
        }
    assert set(recipients(received)) == set(readers)
    assert all(message.message_id == message_ids[message.recipient] for message in received)
    for email, copies in recipients(received).items():
        status, attempts, _reply = rows[email]
        # Each attempt may leave a copy behind, and the transport reconnects once per attempt.
        assert status == "sent" and 1 < copies <= 2 * attempts, (email, copies, attempts)


# --------------------------------------------------------------------------- senders that race


def send_until_done(deliverer: Deliverer, batch: int) -> DeliveryReport:
    report = DeliveryReport()
    while True:
        step = deliverer.deliver_batch(batch)
        report.add(step)
        if not (step.sent + step.failed + step.deferred + step.skipped):
            return report


def test_deliverers_racing_on_one_digest_never_send_a_delivery_twice(
    settings, cli, example_topics, monkeypatch
):
    emails = add_subscribers(settings, "SLAM", 300)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    threads, batch = 4, 7
    reports: dict[str, DeliveryReport] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def sender(name: str, url: str) -> None:
        try:
            with SMTPTransport(url, SMTP_TIMEOUT) as transport:
                deliverer = Deliverer(settings, digest_id, transport, worker=f"racer:{name}")
                start.wait(timeout=30)
                reports[name] = send_until_done(deliverer, batch)
        except BaseException as error:  # noqa: BLE001 (handed to the test thread)
            errors.append(error)

    with SmtpSink() as sink:
        running = [
            threading.Thread(target=sender, args=(f"t{n}", sink.url)) for n in range(threads)
        ]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in running), "a sender hung"
        received = sink.messages()
    assert not errors, errors
    copies = recipients(received)
    assert set(copies) == set(emails)
    assert [email for email, count in copies.items() if count > 1] == []
    assert sum(report.sent for report in reports.values()) == len(emails)
    assert sum(1 for report in reports.values() if report.sent) >= 2  # they really shared it
    assert {status for status, _, _ in deliveries(settings, digest_id).values()} == {"sent"}


class StallsAfterFirst:
    """A transport that, once its first message is sent and recorded, stalls past the lease
    while `meanwhile` runs (another worker taking over), then carries on with the rest."""

    def __init__(self, inner: Transport, stall: float, meanwhile: Callable[[], None]) -> None:
        self.inner, self.stall, self.meanwhile = inner, stall, meanwhile

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        messages = iter(messages)
        first = next(messages, None)
        if first is None:
            return
        yield from self.inner.send([first])
        time.sleep(self.stall)
        self.meanwhile()
        yield from self.inner.send(messages)

    def close(self) -> None:
        self.inner.close()


def test_a_batch_that_outlives_its_lease_leaves_what_another_worker_took_over(
    settings, readers, monkeypatch
):
    """A slow batch (a slow relay, a low shared send rate) may outlast its lease; the worker
    that then claims the rest sends them, and the slow one must not send them again."""
    # Each send is written at once, so the first is recorded before the stall: a group of
    # sends still unwritten when the lease lapses would be sent again (the documented bound).
    settings = set_env(monkeypatch, delivery_lease="0.5", record_every="1")
    digest_id = build(settings)
    with SmtpSink() as sink:
        with SMTPTransport(sink.url, SMTP_TIMEOUT) as fast_transport:
            fast = Deliverer(settings, digest_id, fast_transport, worker="fast:1:1")
            taken_over: list[DeliveryReport] = []
            stalling = StallsAfterFirst(
                SMTPTransport(sink.url, SMTP_TIMEOUT),
                stall=0.7,
                meanwhile=lambda: taken_over.append(fast.deliver_batch(10)),
            )
            slow = Deliverer(settings, digest_id, stalling, worker="slow:1:1")

            slow_report = slow.deliver_batch(10)

            stalling.close()
        received = sink.messages()
    assert (slow_report.sent, taken_over[0].sent) == (1, 3)
    assert recipients(received) == Counter(readers)
    assert {status for status, _, _ in deliveries(settings, digest_id).values()} == {"sent"}


def test_a_lease_that_expired_is_taken_over(settings, readers):
    """A worker that died holding rows (SIGKILL: nothing released) delays them by its lease."""
    digest_id = build(settings)
    claimed_at, lease = utcnow(), timedelta(seconds=1)
    with session_scope(settings) as session:
        held = store.claim_deliveries(session, digest_id, "dead:1:1", 2, claimed_at, lease)
    with SmtpSink() as sink, SMTPTransport(sink.url, SMTP_TIMEOUT) as transport:
        report = deliver_all(settings, digest_id, transport)
        received = sink.messages()
    assert len(held) == 2 and report.sent == 4
    assert recipients(received) == Counter(readers)
    with session_scope(settings) as session:
        rows = {row.id: row for row in store.deliveries_of(session, digest_id)}
    for delivery_id in held:
        row = rows[delivery_id]
        assert (row.status, row.claimed_by) == (DeliveryStatus.sent, None)
        assert row.sent_at >= claimed_at + lease  # not before the dead worker's lease ended


# --------------------------------------------------------------------------- interrupted sends


class InterruptedAfter:
    """The real transport, interrupted once `count` messages were sent and recorded."""

    def __init__(self, inner: Transport, count: int, interrupt: Callable[[], None]) -> None:
        self.inner, self.count, self.interrupt = inner, count, interrupt
        self.sent = 0

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        for result in self.inner.send(messages):
            yield result
            self.sent += 1
            if self.sent == self.count:
                self.interrupt()  # before the next message is taken

    def close(self) -> None:
        self.inner.close()


def ctrl_c() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("interruption", ["ctrl-c", "relay gone"])
def test_an_interrupted_send_resumes_where_it_stopped_and_resends_nothing(
    cli, settings, example_topics, monkeypatch, interruption
):
    emails = add_subscribers(settings, "SLAM", 12)
    store_papers(settings, "SLAM", paper(1))
    with SmtpSink() as sink:
        settings = set_env(monkeypatch, smtp_url=sink.url, send_batch_size="5")
        real_transport = daily_send.transport_from_settings
        interrupt = ctrl_c if interruption == "ctrl-c" else sink.stop
        monkeypatch.setattr(
            daily_send,
            "transport_from_settings",
            lambda s: InterruptedAfter(real_transport(s), 7, interrupt),  # mid second batch
        )

        first = cli("send", "--date", DAY.isoformat(), ok=False)

        assert first.exit_code != 0
        digest_id = digest_of(settings)
        states = Counter(status for status, _, _ in deliveries(settings, digest_id).values())
        assert states == {"sent": 7, "pending": 5}  # what was not sent was handed back
        if interruption == "relay gone":
            assert f"cannot use SMTP server 127.0.0.1:{sink.port}" in first.output
            sink.start()
        monkeypatch.setattr(daily_send, "transport_from_settings", real_transport)

        second = cli("send", "--date", DAY.isoformat())

        received = sink.messages()
    assert "5 sent, 0 failed, 0 to retry later, 7 sent before" in second.output
    assert recipients(received) == Counter(emails)  # each exactly once
    assert {status for status, _, _ in deliveries(settings, digest_id).values()} == {"sent"}
