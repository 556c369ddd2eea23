"""The fast path of delivery: each message by substitution in its segment's template, its links
signed in bulk, outcomes written in groups, a few SQL statements per thousand messages; each
accepted message noted in the send journal at once, so a sender that dies leaves nothing to
send twice but its message in flight.

Speed itself is measured by bench/send_bench.py; these check that the fast path is the slow
path's equal and that nothing is lost or sent twice on the way.
"""

from __future__ import annotations

import email
import math
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta
from email import policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import insert, select, update

from newsletter import store
from newsletter.daily import send as daily_send
from newsletter.daily import serve
from newsletter.db import engine_for, session_scope
from newsletter.delivery import deliverer as delivery_deliverer
from newsletter.delivery import messages as delivery_messages
from newsletter.delivery import outcomes as delivery_outcomes
from newsletter.delivery.deliverer import Deliverer, deliver_all
from newsletter.delivery.journal import FOLDER, FileJournal, RedisJournal, journal_for
from newsletter.delivery.outgoing import Outgoing, SendResult
from newsletter.delivery.smtp import SMTPTransport
from newsletter.digest.edition import EditionOptions
from newsletter.digest.segments import read_segments
from newsletter.intake.subscribers import email_key
from newsletter.message.compose import compose, mailto_for, message_bytes, message_id_for
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    MailFormat,
    Subscriber,
    SubscriberTopic,
    utcnow,
)
from newsletter.processes import pid_namespace
from newsletter.render.email import personalise, render_email
from newsletter.tokens import (
    PAPERS,
    PREFERENCES,
    UNSUBSCRIBE,
    VIEW,
    DigestLinks,
    paper_link,
    papers_url,
    preferences_url,
    read_token,
    unsubscribe_url,
    web_version_url,
)
from tests.helpers import (
    add_subscribers,
    counted,
    ended_sender,
    free_port,
    paper,
    set_env,
    skip_or_fail_in_ci,
    store_papers,
    subscribe,
)
from tests.smtp_sink import SmtpSink

DAY = date(2026, 11, 27)
FROZEN = 1_790_000_000.0  # time.time() while links are compared: tokens carry a timestamp
HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
    "List-Unsubscribe", "List-Unsubscribe-Post",
)  # fmt: skip


def build(settings) -> int:
    digest_id, _translation = daily_send.build(settings, DAY)
    return digest_id


def claimed(settings, deliverer: Deliverer, digest_id: int) -> list[store.ClaimedDelivery]:
    """The digest's rows as a claim reads them (without claiming), made ready to build."""
    with session_scope(settings) as session:
        ids = [row.id for row in store.deliveries_of(session, digest_id)]
        rows = store.claimed_rows(session, ids)
        deliverer.messages.prepare(session, rows)
    return rows


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=policy.strict)


def bodies(message) -> tuple[str, str]:
    text, html = (message.get_body((kind,)).get_content() for kind in ("plain", "html"))
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


# --------------------------------------------------------------------------- the bytes


def three_segments(cli, settings, monkeypatch) -> int:
    """Three readers in three segments (two topic sets, one of them also in German), a paper
    shared by both topics; the digest built, the clock frozen: its id."""
    subscribe(cli, "ada@example.org", "SLAM", "NeRF")
    subscribe(cli, "bo@example.org", "NeRF")
    cli("subscribers", "add", "cy@example.org", "--topic", "SLAM", "--lang", "de")
    store_papers(settings, "SLAM", paper(1, "A SLAM system built on NeRF"), paper(2))
    store_papers(settings, "NeRF", paper(1, "A SLAM system built on NeRF"), paper(3))
    digest_id = build(settings)
    monkeypatch.setattr(time, "time", lambda: FROZEN)
    return digest_id


def test_a_sender_keeps_only_the_segments_in_flight_and_rebuilds_the_same_bytes(
    cli, settings, example_topics, monkeypatch
):
    """Only SEGMENTS_KEPT segments' templates are kept (memory flat in the number of
    segments); a segment met again is rendered again, into the same message."""
    digest_id = three_segments(cli, settings, monkeypatch)
    keeping_all = Deliverer(settings, digest_id, transport=None)
    expected = [
        keeping_all.messages.message(row).wire for row in claimed(settings, keeping_all, digest_id)
    ]
    monkeypatch.setattr(delivery_messages, "SEGMENTS_KEPT", 1)
    deliverer = Deliverer(settings, digest_id, transport=None)
    deliverer.messages._date = keeping_all.messages._date
    rows = claimed(settings, deliverer, digest_id)

    twice = [deliverer.messages.message(row).wire for row in rows + rows]

    assert len({deliverer.messages.segment_key(row) for row in rows}) == 3
    assert len(deliverer.messages._segments) == 1
    assert twice == expected + expected


@pytest.mark.parametrize(
    "pieces",
    [
        (b"<p>a=\r\n", b".b=\r\n.c=\r\n", b".d=\r\n"),
        (b".first=\r\n", b"x=\r\n"),
        (b"title line=\r\n",),
    ],
)
def test_a_cards_wire_pieces_joined_by_a_link_are_the_card_dot_stuffed(pieces):
    """A card's pieces stuffed once (`_stuffed_parts`) and a reader's link stuffed as it is
    made join into what stuffing the joined card gives (its first "." left to the joiner)."""
    from newsletter.message.mail_merge import stuffed_inside

    link = delivery_messages._encoded_url(b"https://d.example.org/p/" + b"x" * 51 + b".tok.sig")
    assert b"\n." in link  # its second line starts with a dot
    joined = link.join(pieces)
    wire = stuffed_inside(link).join(delivery_messages._stuffed_parts(pieces))
    assert wire == stuffed_inside(joined)


def test_a_message_by_substitution_equals_one_composed_for_its_subscriber(
    cli, settings, example_topics, monkeypatch
):
    digest_id = three_segments(cli, settings, monkeypatch)
    deliverer = Deliverer(settings, digest_id, transport=None)
    rows = claimed(settings, deliverer, digest_id)
    with session_scope(settings) as session:
        digest = store.digest_by_id(session, digest_id)
        options = EditionOptions.from_settings(settings, include_empty=True)
        segments = read_segments(session, digest, options)
    content_of = {sid: segment.content for segment in segments for sid in segment.subscriber_ids}
    secret, base = settings.secret(), settings.base_url

    assert len(rows) == 3 and len(segments) == 3
    for row in rows:
        ours = parse(deliverer.messages.message(row).data)
        body = render_email(
            content_of[row.subscriber_id],
            sender_name=settings.sender_name,
            ranked=deliverer.messages.edition.ranked,
        )
        links = (
            unsubscribe_url(base, secret, row.public_id),
            preferences_url(base, secret, row.public_id),
            web_version_url(base, secret, row.public_id, DAY),
        )
        public_id = row.public_id
        personal = personalise(
            body,
            *links,
            paper_url=lambda arxiv_id, public_id=public_id: paper_link(
                papers_url(base, secret, public_id), arxiv_id
            ),
        )
        reference = parse(
            message_bytes(
                compose(
                    sender=settings.from_address,
                    to=row.email,
                    subject=body.subject,
                    html=personal.html,
                    text=personal.text,
                    message_id=row.message_id,
                    list_id=settings.list_id,
                    unsubscribe_url=links[0],
                    unsubscribe_mailto=mailto_for(settings.sender_email, links[0].split("/")[-1]),
                    date=parsedate_to_datetime(ours["Date"]),
                )
            )
        )
        for header in HEADERS:
            assert ours[header] == reference[header], (row.email, header)
        assert [part.get_content_type() for part in ours.iter_parts()] == [
            "text/plain",
            "text/html",
        ]
        assert bodies(ours) == bodies(reference)


def test_an_address_that_is_not_ascii_is_composed_the_slow_way(
    cli, settings, example_topics, monkeypatch
):
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    with session_scope(settings) as session:  # as an import or a direct write could leave it
        session.execute(
            update(Subscriber).values(
                email="zoë@example.org", email_key=email_key("zoë@example.org")
            )
        )
    digest_id = build(settings)
    deliverer = Deliverer(settings, digest_id, transport=None)
    (row,) = claimed(settings, deliverer, digest_id)

    outgoing = deliverer.messages.message(row)

    message = parse(outgoing.data)
    assert outgoing.recipient == "zoë@example.org"
    assert message["Message-ID"] == row.message_id
    assert f"Unsubscribe: {settings.base_url}/unsubscribe/" in bodies(message)[0]


def test_links_that_need_escaping_are_composed_the_slow_way(
    cli, settings, example_topics, monkeypatch
):
    """A base URL with what HTML escapes (or quoted-printable does) cannot be written into the
    pieces as it is: those messages are composed whole, and each card's links still work."""
    settings = set_env(monkeypatch, base_url="https://digest.example.org/list=a&b")
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    deliverer = Deliverer(settings, digest_id, transport=None)
    (row,) = claimed(settings, deliverer, digest_id)

    text, html_part = bodies(parse(deliverer.messages.message(row).data))

    token = re.search(r"/papers/([\w.-]+)/2611\.00001/save", text).group(1)
    assert read_token(settings.secret(), PAPERS, token) == row.public_id
    link = f"https://digest.example.org/list=a&amp;b/papers/{token}/2611.00001/save"
    assert f'href="{link}"' in html_part


def test_plain_text_readers_get_the_text_part_alone_from_the_same_render(
    cli, settings, example_topics, monkeypatch
):
    for address in ("ada@example.org", "bo@example.org", "cy@example.org"):
        subscribe(cli, address, "SLAM")
    store_papers(settings, "SLAM", paper(1), paper(2))
    with session_scope(settings) as session:  # bo and cy (an address the slow way) want text
        session.execute(
            update(Subscriber)
            .where(Subscriber.email != "ada@example.org")
            .values(format=MailFormat.text)
        )
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "cy@example.org")
            .values(email="cyö@example.org", email_key=email_key("cyö@example.org"))
        )
    digest_id = build(settings)
    renders = []
    real_render = delivery_messages.render_email
    monkeypatch.setattr(
        delivery_messages,
        "render_email",
        lambda *a, **k: renders.append(1) or real_render(*a, **k),
    )
    deliverer = Deliverer(settings, digest_id, transport=None)
    by_address = {row.email: row for row in claimed(settings, deliverer, digest_id)}
    ada, bo, cy = (
        parse(deliverer.messages.message(by_address[address]).data)
        for address in ("ada@example.org", "bo@example.org", "cyö@example.org")
    )

    assert len(renders) == 1  # one segment, one render, whatever the formats
    assert ada.get_content_type() == "multipart/alternative"
    secret = settings.secret()
    for message, row in ((bo, by_address["bo@example.org"]), (cy, by_address["cyö@example.org"])):
        assert message.get_content_type() == "text/plain" and not message.is_multipart()
        assert b"<html" not in message.as_bytes().lower()
        text = message.get_content().replace("\r\n", "\n")
        own = re.search(r"Unsubscribe: (\S+)", text).group(1)
        assert read_token(secret, UNSUBSCRIBE, own.rsplit("/", 1)[1]) == row.public_id
        assert message["List-Unsubscribe"].startswith(f"<{own}>")
        # The same text as the HTML reader's text part, but for the reader's own links.
        ada_text = bodies(ada)[0]
        assert re.sub(r"https?://\S+", "LINK", text) == re.sub(r"https?://\S+", "LINK", ada_text)


def test_digest_links_are_the_tokens_make_token_makes():
    secret, base = "s" * 40, "https://digest.example.org"
    links = DigestLinks(base, secret, DAY)
    for public_id in ("AbCdEfGhIjKlMnOpQrStUv", 'quote" and ü'):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(time, "time", lambda: FROZEN)
            made = links.links(public_id)
            expected = (
                unsubscribe_url(base, secret, public_id),
                preferences_url(base, secret, public_id),
                web_version_url(base, secret, public_id, DAY),
                papers_url(base, secret, public_id),
            )
        assert made == expected
        for url, purpose in zip(made, (UNSUBSCRIBE, PREFERENCES, VIEW, PAPERS), strict=True):
            assert read_token(secret, purpose, url.rsplit("/", 1)[1]) == public_id
    # A payload itsdangerous would compress is left as it is: a token all the same.
    unsubscribe = links.links("a" * 40).unsubscribe
    assert read_token(secret, UNSUBSCRIBE, unsubscribe.rsplit("/", 1)[1]) == "a" * 40


# --------------------------------------------------------------------------- outcomes


class Scripted:
    """A transport whose server answers as told, by recipient ("ok" unless "soft" or "hard");
    with a clock, each message takes 0.4 s of it; with `stop_after`, Ctrl-C after that many."""

    def __init__(
        self,
        answers: dict[str, str],
        clock: list[float] | None = None,
        stop_after: int | None = None,
    ) -> None:
        self.answers, self.clock, self.stop_after = answers, clock, stop_after

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        for number, message in enumerate(messages, 1):
            if self.clock is not None:
                self.clock[0] += 0.4
            answer = self.answers.get(message.recipient, "ok")
            detail = {
                "ok": f"250 2.0.0 Ok: queued as Q{message.key}",
                "soft": "451 4.3.0 try later",
                "hard": "550 5.1.1 no such user",
            }[answer]
            yield SendResult(message.key, answer == "ok", answer == "hard", detail)
            if number == self.stop_after:
                raise KeyboardInterrupt

    def close(self) -> None:
        pass


def rows_by_email(settings, digest_id: int) -> dict[str, Delivery]:
    with session_scope(settings) as session:
        return {
            store.subscriber_by_id(session, row.subscriber_id).email: row
            for row in store.deliveries_of(session, digest_id)
        }


def grouped_writes(statements: list[str]) -> int:
    """The UPDATEs that give rows each its own reply (`store.finish_sent`): a CASE on SQLite,
    the replies joined as an array on PostgreSQL."""
    return sum(
        1
        for s in statements
        if s.startswith("UPDATE deliveries") and ("CASE" in s or "FROM unnest(" in s)
    )


def test_successes_are_written_in_groups_and_every_outcome_is_written(
    cli, settings, example_topics, monkeypatch
):
    emails = add_subscribers(settings, "SLAM", 23)
    store_papers(settings, "SLAM", paper(1))
    settings = set_env(monkeypatch, record_every="5", record_interval="600")
    digest_id = build(settings)
    answers = {emails[3]: "hard", emails[7]: "soft"}

    with counted(settings) as statements:
        report = Deliverer(settings, digest_id, Scripted(answers)).deliver_batch(100)

    assert (report.sent, report.failed, report.deferred, report.bounced) == (21, 1, 1, 1)
    assert grouped_writes(statements) == math.ceil(21 / 5)
    rows = rows_by_email(settings, digest_id)
    for address, row in rows.items():
        if address == emails[3]:
            assert (row.status.value, row.detail) == ("failed", "550 5.1.1 no such user")
        elif address == emails[7]:
            assert (row.status.value, row.attempts, row.claimed_by) == ("pending", 1, None)
        else:  # each row with its own reply, though written together
            assert (row.status.value, row.attempts, row.claimed_by) == ("sent", 1, None)
            assert row.detail == f"250 2.0.0 Ok: queued as Q{row.id}" and row.sent_at


def test_a_slow_relay_gets_its_sends_written_after_the_interval(
    cli, settings, example_topics, monkeypatch
):
    add_subscribers(settings, "SLAM", 9)
    store_papers(settings, "SLAM", paper(1))
    settings = set_env(monkeypatch, record_every="1000", record_interval="1")
    digest_id = build(settings)
    clock = [0.0]
    for module in (delivery_deliverer, delivery_outcomes):
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    with counted(settings) as statements:
        report = Deliverer(settings, digest_id, Scripted({}, clock)).deliver_batch(100)

    assert report.sent == 9
    # 0.4 s a message: the first group is a second old at the 4th, the next at the 8th, and
    # the 9th is written when the batch ends (the count alone would have made one write).
    assert grouped_writes(statements) == 3


def test_a_stopped_batch_writes_what_was_sent_then_hands_back_the_rest(
    cli, settings, example_topics, monkeypatch
):
    emails = add_subscribers(settings, "SLAM", 10)
    store_papers(settings, "SLAM", paper(1))
    settings = set_env(monkeypatch, record_every="100")
    digest_id = build(settings)

    with pytest.raises(KeyboardInterrupt):
        Deliverer(settings, digest_id, Scripted({}, stop_after=4)).deliver_batch(100)

    rows = rows_by_email(settings, digest_id)
    states = {address: row.status.value for address, row in rows.items()}
    assert states == {address: "sent" if n < 4 else "pending" for n, address in enumerate(emails)}
    assert all(row.claimed_by is None for row in rows.values())
    # Its sends all written, its journal's file is closed and gone: a worker that meets this
    # every day does not run out of file descriptors.
    assert journal_left(settings) == []
    assert open_files_under(settings.var_dir / FOLDER) == []


def open_files_under(folder: Path) -> list[str]:
    """The files under `folder` this process holds open (Linux: /proc/self/fd)."""
    held = []
    for descriptor in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:  # the one listing the folder, closed by now
            continue
        if target.startswith(f"{folder}/"):
            held.append(target)
    return held


# --------------------------------------------------------------------------- the send journal


@pytest.fixture(params=["file", "redis"])
def journal(request, settings, monkeypatch) -> Iterator[str]:
    """A test once with the file journal (no Redis: the var folder's) and once with Redis'."""
    if request.param == "file":
        yield "file"
        return
    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    client.flushdb()
    set_env(monkeypatch, redis_url=url)
    try:
        yield "redis"
    finally:
        client.flushdb()
        client.close()


def journal_left(settings) -> list[str]:
    """What is left in the send journals: files, or Redis keys."""
    if settings.redis_url is None:
        folder = settings.var_dir / FOLDER
        return sorted(path.name for path in folder.iterdir()) if folder.exists() else []
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        return sorted(key.decode() for key in client.keys("newsletter:send-journal:*"))
    finally:
        client.close()


def all_rows(settings, digest_id: int) -> dict[int, Delivery]:
    with session_scope(settings) as session:
        return {row.id: row for row in store.deliveries_of(session, digest_id)}


class LooksInTheJournal:
    """A relay that accepts everything and, as each message reaches it, looks the one before
    up in the send journal, as a sender claiming that row would."""

    def __init__(self, settings, digest_id: int) -> None:
        self.journal = journal_for(settings, digest_id, "onlooker:0:0")
        self.found: list[bool] = []

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        previous = None
        for message in messages:
            if previous is not None:
                self.found.append(previous in self.journal.recorded_among([previous]))
            previous = message.key
            yield SendResult(message.key, True, False, f"250 2.0.0 Ok: queued as Q{message.key}")

    def close(self) -> None:
        pass


def test_each_accepted_message_is_in_the_journal_before_the_next_one_goes(
    cli, settings, example_topics, monkeypatch, journal
):
    add_subscribers(settings, "SLAM", 12)
    store_papers(settings, "SLAM", paper(1))
    settings = set_env(monkeypatch, record_every="1000", record_interval="600")
    digest_id = build(settings)
    relay = LooksInTheJournal(settings, digest_id)

    report = Deliverer(settings, digest_id, relay).deliver_batch(100)

    assert report.sent == 12
    assert relay.found == [True] * 11  # none written to the database yet: the journal alone
    # Written to the database when the batch ended, then dropped from the journal.
    assert {row.status.value for row in all_rows(settings, digest_id).values()} == {"sent"}
    assert journal_left(settings) == []


def test_what_a_dead_sender_journaled_is_marked_sent_and_not_sent_again(
    cli, settings, example_topics, monkeypatch, journal
):
    emails = add_subscribers(settings, "SLAM", 8)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    dead = ended_sender()
    with session_scope(settings) as session:  # it claimed five rows, and its lease has ended
        long_ago = utcnow() - timedelta(minutes=1)
        held = store.claim_deliveries(session, digest_id, dead, 5, long_ago, timedelta(seconds=1))
    its_journal = journal_for(settings, digest_id, dead)
    for key in held[:3]:  # the relay accepted three, noted, not written; then SIGKILL
        its_journal.record(key, f"250 2.0.0 Ok: queued as D{key}")
    address = {row.id: email for email, row in rows_by_email(settings, digest_id).items()}

    with SmtpSink() as sink, SMTPTransport(sink.url, 10) as transport:
        with counted(settings) as statements:
            report = deliver_all(settings, digest_id, transport)
        received = sink.messages()

    assert sorted(m.recipient for m in received) == sorted(
        set(emails) - {address[key] for key in held[:3]}
    )
    assert (report.sent, report.recovered) == (5, 3)
    rows = all_rows(settings, digest_id)
    for key in held[:3]:  # marked as if it had written them: its reply, one attempt
        row = rows[key]
        assert (row.status.value, row.attempts, row.claimed_by) == ("sent", 1, None)
        assert row.detail == f"250 2.0.0 Ok: queued as D{key}" and row.sent_at
    assert {row.status.value for row in rows.values()} == {"sent"}
    assert grouped_writes(statements) == 2  # the three found, then the five sent
    assert journal_left(settings) == []


def test_a_journal_of_another_pid_namespace_is_read_never_taken_whole(
    cli, settings, example_topics
):
    add_subscribers(settings, "SLAM", 7)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    # No such process here; in the container that shares the folder, maybe a live sender.
    sender = ended_sender()
    with session_scope(settings) as session:
        long_ago = utcnow() - timedelta(minutes=1)
        held = store.claim_deliveries(session, digest_id, sender, 5, long_ago, timedelta(seconds=1))
    namespace = pid_namespace() + 1
    its_journal = FileJournal(settings.var_dir / FOLDER, digest_id, sender, namespace)
    for key in held[3:]:  # the last two it had sent
        its_journal.record(key, f"250 2.0.0 Ok: queued as E{key}")

    first = Deliverer(settings, digest_id, Scripted({})).deliver_batch(2)  # held[0], held[1]

    assert (first.sent, first.recovered) == (2, 0)
    rows = all_rows(settings, digest_id)
    assert [rows[key].status.value for key in held[3:]] == ["sending", "sending"]
    assert its_journal.path.exists()  # its sender's to remove

    rest = deliver_all(settings, digest_id, Scripted({}))

    # Its rows were looked up when claimed: found there, and not sent again.
    assert (rest.sent, rest.recovered) == (7 - 2 - 2, 2)
    rows = all_rows(settings, digest_id)
    for key in held[3:]:
        assert rows[key].detail == f"250 2.0.0 Ok: queued as E{key}"
    assert {row.status.value for row in rows.values()} == {"sent"}
    assert its_journal.path.exists()


def test_a_claim_reads_the_rows_still_to_send_not_those_sent(cli, settings, example_topics):
    # A send goes in id order: halfway, the first half of the rows is sent. A claim that
    # walked the digest's rows by id (its ORDER BY, the plan PostgreSQL picks for a LIMIT when
    # half the rows match) would pass every row sent at each batch, a send of N rows reading
    # some N²/4 of them: it must read the index of the rows still to send, as it runs: its
    # parameters bound, and on PostgreSQL planned once for all their values (psycopg prepares
    # a statement at its fifth run, and the server may then keep one generic plan).
    add_subscribers(settings, "SLAM", 2000)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    with session_scope(settings) as session:
        ids = [row.id for row in store.deliveries_of(session, digest_id)]
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids[:1000])).values(status=DeliveryStatus.sent)
        )
    with session_scope(settings) as session:
        connection = session.connection()
        connection.exec_driver_sql("ANALYZE")  # the planners see the rows as they are
        claim = store.deliveries._claim(session, digest_id, "w", 500, utcnow(), timedelta(60))
        plan = planned(connection, claim)
        index = connection.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND indexname = 'ix_deliveries_unsent'"
            if connection.dialect.name == "postgresql"
            else "SELECT sql FROM sqlite_master WHERE name = 'ix_deliveries_unsent'"
        ).scalar_one()
        claimed = store.claim_deliveries(session, digest_id, "w", 500, utcnow(), timedelta(60))
    assert "ix_deliveries_unsent" in plan, plan
    assert "WHERE" in index and "'pending'" in index and "'sending'" in index, index
    assert claimed == ids[1000:1500]


def planned(connection, statement) -> str:
    """The plan of `statement` as it runs, its parameters bound: on PostgreSQL the generic
    plan of it prepared (one for all the parameters' values), on SQLite its query plan."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import psycopg

        dollar = psycopg.dialect(paramstyle="numeric_dollar")  # PREPARE's $1, $2…
        compiled = statement.compile(dialect=dollar, compile_kwargs={"render_postcompile": True})
        values = [compiled.params[name] for name in compiled.positiontup]
        arguments = ", ".join("'{}'".format(str(value).replace("'", "''")) for value in values)
        connection.exec_driver_sql(f"PREPARE claim_plan AS {compiled.string}")
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        rows = connection.exec_driver_sql(f"EXPLAIN EXECUTE claim_plan({arguments})").all()
        connection.exec_driver_sql("DEALLOCATE claim_plan")
    else:
        compiled = statement.compile(
            dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
        )
        values = [compiled.params[name] for name in compiled.positiontup]
        bound = tuple(value if isinstance(value, int) else str(value) for value in values)
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", bound).all()
    return "\n".join(str(row) for row in rows)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claim_sends_its_rows_though_a_dead_sender_s_others_cannot_be_marked(
    cli, settings, example_topics, monkeypatch, caplog
):
    add_subscribers(settings, "SLAM", 6)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    dead = ended_sender()
    with session_scope(settings) as session:
        long_ago = utcnow() - timedelta(minutes=1)
        held = store.claim_deliveries(session, digest_id, dead, 5, long_ago, timedelta(seconds=1))
    its_journal = journal_for(settings, digest_id, dead)
    for key in held[3:]:  # the last two it had sent, noted, not written; then SIGKILL
        its_journal.record(key, f"250 2.0.0 Ok: queued as D{key}")
    # Another session holds one of them: marking it waits, and gives up after 300 ms.
    direct = settings.database_url
    impatient = set_env(monkeypatch, database_url=f"{direct}%20-clock_timeout%3D300")
    try:
        with engine_for(direct).connect() as holder, holder.begin():
            holder.execute(select(Delivery.id).where(Delivery.id == held[4]).with_for_update())
            first = Deliverer(impatient, digest_id, Scripted({})).deliver_batch(2)

        # Its claim (held[0], held[1]) sent, not left `sending` until the lease ends.
        assert (first.sent, first.recovered) == (2, 0)
        rows = all_rows(impatient, digest_id)
        assert [rows[key].status.value for key in held[:2]] == ["sent", "sent"]
        assert [rows[key].status.value for key in held[3:]] == ["sending", "sending"]
        (warning,) = [r for r in caplog.records if "not marked sent yet" in r.getMessage()]
        assert warning.levelname == "WARNING" and not warning.exc_info

        rest = deliver_all(impatient, digest_id, Scripted({}))  # nobody holds anything now
    finally:
        engine_for(impatient.database_url).dispose()

    assert (rest.sent, rest.recovered) == (6 - 2 - 2, 2)  # the journal was left for them
    assert {row.status.value for row in all_rows(settings, digest_id).values()} == {"sent"}
    assert journal_left(settings) == []


class TakenOverAtTheEnd(Scripted):
    """A relay that accepts everything; as its last reply comes, another sender takes the
    batch's rows over (their lease ended: a relay slower than the lease) before they are
    written, finding them in the journal."""

    def __init__(self, settings, digest_id: int) -> None:
        super().__init__({})
        self.settings, self.digest_id = settings, digest_id
        self.other: delivery_deliverer.DeliveryReport | None = None

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        yield from super().send(messages)
        with session_scope(self.settings) as session:
            session.execute(update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        other = Deliverer(self.settings, self.digest_id, Scripted({}), worker="other:1:1")
        self.other = other.deliver_batch(100)


def test_a_send_another_sender_recovered_is_counted_once(
    cli, settings, example_topics, monkeypatch, journal
):
    add_subscribers(settings, "SLAM", 3)
    store_papers(settings, "SLAM", paper(1))
    settings = set_env(monkeypatch, record_every="1000", record_interval="600")
    digest_id = build(settings)
    relay = TakenOverAtTheEnd(settings, digest_id)

    report = Deliverer(settings, digest_id, relay).deliver_batch(100)

    assert (relay.other.sent, relay.other.recovered) == (0, 3)  # found in the journal
    assert report.sent == 0  # already marked when this sender wrote its group: not counted again
    assert {row.status.value for row in all_rows(settings, digest_id).values()} == {"sent"}
    assert journal_left(settings) == []


def test_a_claim_whose_journal_cannot_be_read_is_undone(cli, settings, example_topics, monkeypatch):
    add_subscribers(settings, "SLAM", 3)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    settings = set_env(monkeypatch, redis_url=f"redis://127.0.0.1:{free_port()}/0")  # refused
    relay = Scripted({})

    with pytest.raises(redis.ConnectionError):  # as it came: the worker waits for Redis
        Deliverer(settings, digest_id, relay).deliver_batch(100)

    # Rows that may have gone (a dead sender's) are never sent unlooked-up: none was claimed.
    rows = all_rows(settings, digest_id).values()
    assert [(row.status.value, row.claimed_by) for row in rows] == [("pending", None)] * 3


@contextmanager
def private_redis() -> Iterator[tuple[str, subprocess.Popen]]:
    """A Redis server of the test's own, which it may stop."""
    program = shutil.which("redis-server")
    if program is None:
        skip_or_fail_in_ci("no redis-server (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, process
    finally:
        client.close()
        process.kill()
        process.wait()


class RedisChangesAfter(Scripted):
    """A relay that accepts everything; once `after` messages are accepted, `change()` is done
    to Redis (stopping it, making it refuse writes)."""

    def __init__(self, after: int, change: Callable[[], None]) -> None:
        super().__init__({})
        self.after, self.change = after, change

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        for number, result in enumerate(super().send(messages), 1):
            yield result
            if number == self.after:
                self.change()


def stopped(server: subprocess.Popen) -> Callable[[], None]:
    def stop() -> None:
        server.kill()
        server.wait()

    return stop


def refusing_writes(url: str) -> Callable[[], None]:
    def refuse() -> None:  # every write refused as out of memory
        with redis.Redis.from_url(url) as client:
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", 1)

    return refuse


def test_a_journal_that_stops_mid_batch_ends_it_with_every_send_written(
    cli, settings, example_topics, monkeypatch
):
    emails = add_subscribers(settings, "SLAM", 8)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    with private_redis() as (url, server):
        settings = set_env(monkeypatch, redis_url=url, record_every="1000")

        with pytest.raises(redis.ConnectionError):
            Deliverer(settings, digest_id, RedisChangesAfter(3, stopped(server))).deliver_batch(100)

    # The fourth was accepted and could not be noted: written with the three before it; the
    # rest handed back, to go with the next claim. (A note's reply is not waited for: when the
    # fourth's note went into the socket unrefused, the fifth's finds Redis gone, and the
    # fifth, sent meanwhile, is written too.)
    states = {email: row.status.value for email, row in rows_by_email(settings, digest_id).items()}
    sent = 4 if states[emails[4]] == "pending" else 5
    assert states == {email: "sent" if n < sent else "pending" for n, email in enumerate(emails)}


def test_a_journal_that_refuses_notes_ends_the_batch_within_a_few_notes(
    cli, settings, example_topics, monkeypatch
):
    count = 3 + RedisJournal.READ_EVERY * 3
    emails = add_subscribers(settings, "SLAM", count)
    store_papers(settings, "SLAM", paper(1))
    digest_id = build(settings)
    with private_redis() as (url, _server):
        settings = set_env(monkeypatch, redis_url=url, record_every="1000")

        with pytest.raises(redis.ResponseError, match="maxmemory"):
            relay = RedisChangesAfter(3, refusing_writes(url))
            Deliverer(settings, digest_id, relay).deliver_batch(count)

    # The notes' replies are read a few at a time, not at each note, and never waited for:
    # the refusals are seen once READ_EVERY notes are unread and their replies have come (a
    # busy machine's Redis may answer some notes late), not when the batch's last message
    # has gone; every message accepted until then is written, the rest handed back.
    states = [rows_by_email(settings, digest_id)[email].status.value for email in emails]
    sent = states.count("sent")
    assert 3 < sent <= count - RedisJournal.READ_EVERY
    assert states == ["sent"] * sent + ["pending"] * (count - sent)


# --------------------------------------------------------------------------- a real run

ONE_TIME_STATEMENTS = 7
"""A sender's reads of the digest, its topics and papers; the claim that finds nothing left
and the two looks for rows still due; whether any webhook asked for `digest.sent` (asked once
a minute): paid once, however many messages."""


def test_a_list_goes_out_once_each_in_a_few_statements_per_thousand(
    cli, settings, example_topics, monkeypatch
):
    topics = ["SLAM", "NeRF", "Diffusion", "MLLM"]
    count = 1_000
    addresses = []
    with session_scope(settings) as session:
        topic_ids = [store.get_topic(session, name).id for name in topics]
        for number in range(count):
            address = f"reader{number:04d}@example.org"
            addresses.append(address)
            (subscriber_id,) = session.execute(
                insert(Subscriber)
                .values(
                    email=address,
                    email_key=address,
                    public_id=f"p{number:04d}",
                    language=("en", "de", "zh")[number % 3],
                )
                .returning(Subscriber.id)
            ).one()
            wanted = topic_ids[: 1 + number % 3] if number % 2 else topic_ids[number % 4 :]
            session.execute(
                insert(SubscriberTopic),
                [{"subscriber_id": subscriber_id, "topic_id": t} for t in wanted],
            )
    for number, name in enumerate(topics):
        store_papers(settings, name, paper(number * 2 + 1), paper(number * 2 + 2))
    settings = set_env(monkeypatch, record_interval="600")  # grouped by count alone
    digest_id = build(settings)

    with SmtpSink() as sink, SMTPTransport(sink.url, 10) as transport:
        with counted(settings) as statements:
            report = deliver_all(settings, digest_id, transport)
        received = sink.messages()

    assert report.sent == count
    assert Counter(message.recipient for message in received) == Counter(addresses)
    rows = rows_by_email(settings, digest_id)
    assert {row.status.value for row in rows.values()} == {"sent"}
    assert all(message.message_id == rows[message.recipient].message_id for message in received)
    assert len(statements) <= ONE_TIME_STATEMENTS + 10 * count / 1000, statements


# --------------------------------------------------------------------------- preparing


def test_delivery_rows_are_written_in_chunks_once_each(cli, settings, example_topics, monkeypatch):
    emails = add_subscribers(settings, "SLAM", 20)
    store_papers(settings, "SLAM", paper(1))
    monkeypatch.setattr(serve, "INSERT_CHUNK", 7)

    with counted(settings) as statements:
        digest_id, _segments = daily_send.prepare(settings, DAY)
    daily_send.prepare(settings, DAY)  # again: nothing new

    inserts = [s for s in statements if s.startswith("INSERT INTO deliveries")]
    assert len(inserts) == math.ceil(20 / 7)
    with session_scope(settings) as session:
        rows = session.execute(
            select(Subscriber.email, Subscriber.public_id, Delivery.message_id).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    assert sorted(address for address, _public, _message in rows) == sorted(emails)
    for _address, public_id, message_id in rows:
        expected = message_id_for(settings.secret(), DAY.isoformat(), public_id, "localhost")
        assert settings.sender_domain == "localhost"
        assert message_id == expected


def test_a_paper_whose_text_looks_like_a_placeholder_is_shown_as_written(
    cli, settings, example_topics
):
    """A card's gap for the reader's link carries a random part: an abstract that mimics the
    gap's form stays text, breaks no card, and takes no reader's link."""
    subscribe(cli, "ada@example.org", "SLAM")
    mimic = "We study __NEWSLETTER_PAPER_2611.00002__ and __NEWSLETTER_PAPER_2611.00001__ things."
    store_papers(settings, "SLAM", replace(paper(1), abstract=mimic), paper(2))
    digest_id = build(settings)
    deliverer = Deliverer(settings, digest_id, transport=None)
    (row,) = claimed(settings, deliverer, digest_id)

    text, html_part = bodies(parse(deliverer.messages.message(row).data))

    assert mimic in " ".join(text.split())
    assert mimic in html_part
    assert len(re.findall(r"/papers/[\w.-]+/2611\.0000[12]/save", text)) == 2  # one a card
