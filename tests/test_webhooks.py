"""Outgoing webhooks: registered from the CLI, written with the change that makes each event
(from every door), signed the Standard Webhooks way, posted by the worker or after a send,
retried with backoff, and never in the way of a send.

The endpoint is a local HTTP server that checks every signature with the webhook's secret, as
a receiver following the README would, and answers what each test scripts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from newsletter import store, tokens
from newsletter.config import get_settings
from newsletter.daily import fetch, send
from newsletter.db import session_scope
from newsletter.delivery import webhooks as posting
from newsletter.delivery.deliverer import Deliverer
from newsletter.delivery.outbox import OutboxTransport
from newsletter.errors import InvalidInput
from newsletter.intake.webhooks import EVENTS, WebhookSpec
from newsletter.models import SubscriberStatus, WebhookDelivery, utcnow
from newsletter.web import create_app
from tests.helpers import (
    REPO,
    WorkerProcess,
    bounce_of,
    digests_sent,
    load_tasks,
    minutes_of,
    outbox,
    paper,
    set_env,
    store_papers,
    subscribe,
    tasks_on_redis,
    write_mbox,
)
from tests.loopback_http import LoopbackHandler, LoopbackHTTPServer
from tests.web_helpers import confirm_path, local_smtp, submit, subscribe_form

ADA = "ada@example.org"


# ---------------------------------------------------------------- the receiver


def verify(secret: str, headers, body: bytes, tolerance: float = 300) -> bool:
    """A Standard Webhooks receiver's check, as the README shows it."""
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False  # too old (or from the future): a replay
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(signature.removeprefix("v1,"), expected)
        for signature in headers["webhook-signature"].split()
        if signature.startswith("v1,")
    )


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    valid: bool

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass(frozen=True)
class Script:
    status: int = 204
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False
    delay: float = 0.0


class _ReceiverHandler(LoopbackHandler):
    owner: Receiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        valid = self.owner.secret is not None and verify(self.owner.secret, headers, body)
        with self.owner.lock:
            self.owner.received.append(Received(headers, body, valid))
            script = self.owner.script.pop(0) if self.owner.script else self.owner.default
        if script.hang:
            self.send_reply(200, "text/plain", b"too late", delay=3600)
        elif not valid:
            self.send_reply(401, "text/plain", b"bad signature")
        else:
            self.send_reply(
                script.status,
                "text/plain",
                b"thanks",
                headers=dict(script.headers),
                delay=script.delay,
            )


class Receiver(LoopbackHTTPServer):
    """A webhook endpoint: records every POST, checks its signature with `secret` (401 when it
    does not verify), and answers each with the next `script`ed answer (then `default`)."""

    def __init__(self) -> None:
        super().__init__(_ReceiverHandler)
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.script: list[Script] = []
        self.default = Script()
        self.secret: str | None = None

    def url_for(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/hooks/digest"

    def events(self) -> list[str]:
        return [request.payload["type"] for request in self.received]


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def register(cli, receiver: Receiver, *events: str) -> int:
    """`newsletter webhooks add` for the receiver; it learns the secret printed once."""
    options = [part for event in events for part in ("--event", event)]
    output = cli("webhooks", "add", receiver.url, *options).output
    receiver.secret = output.split("receiver): ", 1)[1].split()[0]
    return int(output.split("Added webhook ", 1)[1].split(":", 1)[0])


def rows(settings) -> list[WebhookDelivery]:
    with session_scope(settings) as session:
        found = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        session.expunge_all()
        return found


def fast_retries(monkeypatch, **more: str):
    return set_env(monkeypatch, webhook_retry_backoff="0", webhook_timeout="2", **more)


# ---------------------------------------------------------------- the commands


def test_add_shows_the_secret_once_and_list_never(cli, settings, receiver):
    webhook_id = register(cli, receiver, "digest.sent", "subscriber.unsubscribed")
    assert receiver.secret.startswith("whsec_") and len(base64.b64decode(receiver.secret[6:])) == 32

    listed = cli("webhooks", "list").output
    as_json = json.loads(cli("webhooks", "list", "--json").output)
    assert receiver.secret not in listed and receiver.secret not in json.dumps(as_json)
    assert as_json == [
        {
            "id": webhook_id,
            "url": receiver.url,
            "events": ["digest.sent", "subscriber.unsubscribed"],
            "active": True,
            "created_at": as_json[0]["created_at"],
        }
    ]
    cli("webhooks", "remove", str(webhook_id))
    assert json.loads(cli("webhooks", "list", "--json").output) == []


@pytest.mark.parametrize(
    "arguments, error",
    [
        (["ftp://example.org/x", "-e", "digest.sent"], "must start with http:// or https://"),
        (["https:///nohost", "-e", "digest.sent"], "must start with http:// or https://"),
        (["https://u:pw@example.org/x", "-e", "digest.sent"], "has a password in it"),
        (["https://example.org/x", "-e", "digest.snet"], "unknown webhook event 'digest.snet'"),
    ],
)
def test_bad_input_names_what_is_wrong(cli, settings, arguments, error):
    result = cli("webhooks", "add", *arguments, ok=False)
    assert result.exit_code == 1
    assert error in result.output
    assert json.loads(cli("webhooks", "list", "--json").output) == []


def test_an_unknown_webhook_id_is_named(cli, settings):
    result = cli("webhooks", "test", "42", ok=False)
    assert result.exit_code == 1 and "no webhook with the id 42" in result.output


def test_the_test_command_posts_a_signed_ping_and_prints_the_answer(cli, settings, receiver):
    webhook_id = register(cli, receiver, "digest.sent")
    output = cli("webhooks", "test", str(webhook_id)).output
    assert "answered: 204" in output
    (ping,) = receiver.received
    assert ping.valid and ping.payload["type"] == "webhook.test"
    assert rows(settings) == []  # nothing stored, nothing retried

    receiver.default = Script(status=410)
    failed = cli("webhooks", "test", str(webhook_id), ok=False)
    assert failed.exit_code == 1 and "answered: 410" in failed.output


# ---------------------------------------------------------------- signatures


def test_deliveries_are_signed_and_a_tampered_body_is_refused(
    cli, settings, receiver, example_topics
):
    register(cli, receiver, "subscriber.unsubscribed")
    subscribe(cli, ADA, "SLAM")
    cli("subscribers", "remove", ADA)
    (row,) = rows(settings)
    assert (row.event, row.status, row.attempts) == ("subscriber.unsubscribed", "pending", 0)

    report = posting.post_due(settings)

    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    (request,) = receiver.received
    assert request.valid
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == request.payload["id"]
    assert request.headers["webhook-signature"].startswith("v1,")
    with session_scope(settings) as session:
        subscriber = store.get_subscriber(session, ADA)
        wanted = {"public_id": subscriber.public_id, "email": ADA, "status": "unsubscribed"}
    data = request.payload["data"]
    assert {key: data["subscriber"][key] for key in wanted} == wanted
    assert data["subscriber"]["topics"] == ["SLAM"] and data["source"] == "cli"
    assert request.payload["timestamp"].endswith("Z")
    assert receiver.secret not in request.body.decode()
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("sent", 1) and row.detail.startswith("204")

    tampered = request.body.replace(b"unsubscribed", b"subscribed")
    answer = requests.post(receiver.url, data=tampered, headers=request.headers, timeout=5)
    assert answer.status_code == 401
    assert not receiver.received[-1].valid
    other_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert not verify(other_secret, request.headers, request.body)


# ---------------------------------------------------------------- events from real flows


def test_a_cli_unsubscription_tells_only_the_webhooks_that_asked(cli, settings, receiver):
    cli("topics", "add", "SLAM", "-k", "slam")
    subscribe(cli, ADA, "SLAM")
    asked = register(cli, receiver, "subscriber.unsubscribed")
    cli("webhooks", "add", "http://127.0.0.1:9/other", "-e", "digest.sent")
    cli("subscribers", "edit", ADA, "--name", "Ada")  # a change, no event
    cli("subscribers", "remove", ADA)
    cli("subscribers", "remove", ADA)  # unsubscribed already: nothing happened
    assert [(row.webhook_id, row.event) for row in rows(settings)] == [
        (asked, "subscriber.unsubscribed")
    ]


def test_confirming_on_the_web_and_one_click_unsubscribe_tell_the_webhooks(
    cli, settings, receiver, example_topics, monkeypatch
):
    register(cli, receiver, "subscriber.confirmed", "subscriber.unsubscribed")
    with local_smtp(monkeypatch) as smtp:
        client = create_app(set_env(monkeypatch)).test_client()
        subscribe_form(client, ADA, "slam", "mllm", "diffusion")
        assert rows(settings) == []  # asked, not confirmed: nothing yet
        submit(client, confirm_path(smtp.messages[0]), {})
    with session_scope(settings) as session:
        public_id = store.get_subscriber(session, ADA).public_id
    path = tokens.unsubscribe_url("", settings.secret(), public_id)
    mail_client = create_app(settings).test_client(use_cookies=False)
    for _ in range(2):  # a mail provider may send it twice: one event, one webhook row
        answer = mail_client.post(
            path,
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert answer.status_code == 200

    posting.post_due(settings)

    assert receiver.events() == ["subscriber.confirmed", "subscriber.unsubscribed"]
    assert all(request.valid for request in receiver.received)
    sources = [request.payload["data"]["source"] for request in receiver.received]
    assert sources == ["web", "one-click"]
    # The one-click path loads no Subscriber, yet tells what every other door tells.
    confirmed, unsubscribed = (request.payload["data"] for request in receiver.received)
    assert unsubscribed["subscriber"] == {**confirmed["subscriber"], "status": "unsubscribed"}
    assert unsubscribed["subscriber"]["topics"] == ["MLLM", "Diffusion", "SLAM"]
    # Its envelope too (on PostgreSQL it is built by the database): the same keys in the same
    # order, an id of its own, a timestamp to the second.
    first, second = (json.loads(request.body) for request in receiver.received)
    assert list(second) == list(first) == ["id", "type", "timestamp", "data"]
    assert list(second["data"]) == list(first["data"])
    assert list(second["data"]["subscriber"]) == list(first["data"]["subscriber"])
    for envelope in (first, second):
        assert re.fullmatch(r"msg_[0-9a-f]{32}", envelope["id"]), envelope["id"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", envelope["timestamp"])
    assert first["id"] != second["id"]


def test_a_bounce_report_tells_the_webhooks(cli, settings, receiver, tmp_path, example_topics):
    sent = digests_sent(cli, settings, "ghost@example.net", "fine@example.net")
    register(cli, receiver, "subscriber.bounced")
    box = write_mbox(
        tmp_path / "bounces.mbox",
        bounce_of(sent, "ghost@example.net", "5.1.1", "550 5.1.1 User unknown"),
        bounce_of(sent, "fine@example.net", "4.2.2", "452 4.2.2 Mailbox full"),
    )
    cli("bounces", "import", str(box))

    posting.post_due(settings)

    (request,) = receiver.received
    assert request.valid and request.payload["type"] == "subscriber.bounced"
    data = request.payload["data"]
    assert data["subscriber"]["email"] == "ghost@example.net" and data["source"] == "bounce"
    assert "5.1.1" in data["detail"]


def test_a_daily_run_tells_of_the_digest_built_and_sent(cli, settings, arxiv, receiver):
    register(cli, receiver, "digest.built", "digest.sent")

    output = cli("run").output  # no worker: the run posts them once the mail is out

    assert "2 sent" in output and "Webhooks: 2 posted" in output
    assert receiver.events() == ["digest.built", "digest.sent"]
    built, done = (request.payload["data"] for request in receiver.received)
    assert all(request.valid for request in receiver.received)
    today = settings.today().isoformat()
    assert built["digest"]["date"] == today and built["digest"]["kind"] == "daily"
    assert built["digest"]["url"] == f"http://localhost:8000/digests/{today}"
    assert built["papers"] == 3 and "deliveries" not in built
    assert done["digest"] == built["digest"]
    assert done["deliveries"] == {"sent": 2, "failed": 0, "skipped": 0}

    cli("run")  # nothing new is built or finished: nothing more to tell
    assert receiver.events() == ["digest.built", "digest.sent"]


def test_digest_sent_waits_for_the_last_delivery(cli, settings, receiver, example_topics):
    register(cli, receiver, "digest.sent")
    subscribe(cli, ADA, "SLAM")
    subscribe(cli, "bo@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    digest_id, _ = send.build(settings, settings.today())
    deliverer = Deliverer(settings, digest_id, OutboxTransport(settings.outbox_dir))
    deliverer.deliver_batch(1)
    assert rows(settings) == []  # one of two sent: not yet
    deliverer.deliver_batch(1)
    (row,) = rows(settings)
    assert row.payload["data"]["deliveries"]["sent"] == 2


# ---------------------------------------------------------------- the outbox's transaction


def test_a_rolled_back_change_tells_nobody(cli, settings, receiver, example_topics):
    register(cli, receiver, "subscriber.unsubscribed")
    subscribe(cli, ADA, "SLAM")

    class Oops(Exception):
        pass

    with pytest.raises(Oops), session_scope(settings) as session:
        subscriber = store.get_subscriber(session, ADA)
        store.set_status(session, subscriber, SubscriberStatus.unsubscribed, "cli")
        session.flush()
        assert len(session.scalars(select(WebhookDelivery)).all()) == 1  # written with it
        raise Oops
    assert rows(settings) == []
    assert posting.post_due(settings).posted_any is False
    assert receiver.received == []


# ---------------------------------------------------------------- retries


def unsubscribed_with_a_webhook(cli, settings, receiver) -> None:
    cli("topics", "add", "SLAM", "-k", "slam")
    subscribe(cli, ADA, "SLAM")
    register(cli, receiver, "subscriber.unsubscribed")
    cli("subscribers", "remove", ADA)


def test_a_500_is_retried_with_the_same_id_until_it_succeeds(cli, settings, receiver, monkeypatch):
    settings = fast_retries(monkeypatch)
    unsubscribed_with_a_webhook(cli, settings, receiver)
    receiver.script = [Script(500), Script(503), Script(200)]

    reports = [posting.post_due(settings) for _ in range(3)]

    assert [(r.sent, r.retrying) for r in reports] == [(0, 1), (0, 1), (1, 0)]
    assert len({request.headers["webhook-id"] for request in receiver.received}) == 1
    assert all(request.valid for request in receiver.received)
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("sent", 3)


def test_the_backoff_doubles(cli, settings, receiver, monkeypatch):
    settings = set_env(monkeypatch, webhook_retry_backoff="100")
    unsubscribed_with_a_webhook(cli, settings, receiver)
    receiver.default = Script(502)
    posting.post_due(settings)
    (row,) = rows(settings)
    assert row.status == "pending" and "attempt 1: 502" in row.detail and "100 s" in row.detail
    assert posting.post_due(settings).posted_any is False  # not due before its time
    with session_scope(settings) as session:
        session.get(WebhookDelivery, row.id).not_before = utcnow()
    posting.post_due(settings)
    (row,) = rows(settings)
    assert row.attempts == 2 and "retried in 200 s" in row.detail


def test_it_gives_up_after_the_last_attempt_and_status_says_why(
    cli, settings, receiver, monkeypatch
):
    settings = fast_retries(monkeypatch, webhook_max_attempts="3")
    unsubscribed_with_a_webhook(cli, settings, receiver)
    receiver.default = Script(503)

    reports = [posting.post_due(settings) for _ in range(4)]

    assert [r.failed for r in reports] == [0, 0, 1, 0] and len(receiver.received) == 3
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.detail.startswith("gave up after 3 attempt(s): 503")
    assert "\n" not in row.detail
    status = cli("status").output
    assert "Webhooks" in status and "gave up after 3 attempt(s): 503" in status
    failed = cli("webhooks", "deliveries", "--failed", "--json").output
    assert [entry["id"] for entry in json.loads(failed)] == [row.id]

    receiver.default = Script(200)
    again = cli("webhooks", "retry").output
    assert "1 failed deliveries are pending again" in again and "Webhooks: 1 posted" in again
    assert rows(settings)[0].status == "sent"


def test_a_client_error_is_not_retried(cli, settings, receiver, monkeypatch):
    settings = fast_retries(monkeypatch)
    unsubscribed_with_a_webhook(cli, settings, receiver)
    receiver.default = Script(404)
    assert posting.post_due(settings).failed == 1
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("failed", 1) and "(not retried)" in row.detail


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(cli, settings, receiver, monkeypatch, status):
    settings = fast_retries(monkeypatch)
    unsubscribed_with_a_webhook(cli, settings, receiver)
    receiver.default = Script(status, headers=(("Retry-After", "120"),))
    before = utcnow()

    posting.post_due(settings)
    assert posting.post_due(settings).posted_any is False  # the backoff alone would be 0 s

    (row,) = rows(settings)
    assert row.status == "pending" and len(receiver.received) == 1
    assert row.not_before >= before + timedelta(seconds=120)
    assert row.not_before <= utcnow() + timedelta(seconds=121)


def test_an_endpoint_that_is_down_is_retried(cli, settings, monkeypatch):
    settings = fast_retries(monkeypatch)
    cli("topics", "add", "SLAM", "-k", "slam")
    subscribe(cli, ADA, "SLAM")
    with Receiver() as gone:
        url = gone.url  # nothing listens there once it stops
    cli("webhooks", "add", url, "-e", "subscriber.unsubscribed")
    cli("subscribers", "remove", ADA)
    assert posting.post_due(settings).retrying == 1
    (row,) = rows(settings)
    assert row.status == "pending" and "could not connect" in row.detail


def test_two_posters_never_post_the_same_row(cli, settings, receiver, example_topics):
    register(cli, receiver, "subscriber.unsubscribed")
    receiver.default = Script(delay=0.05)  # each poster is mid-POST while the others look
    for number in range(6):
        subscribe(cli, f"r{number}@example.org", "SLAM")
        cli("subscribers", "remove", f"r{number}@example.org")
    threads = [threading.Thread(target=posting.post_due, args=(settings,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(
        row.payload["id"] for row in rows(settings)
    )
    assert {row.status for row in rows(settings)} == {"sent"}


# ---------------------------------------------------------------- never in the way of a send


def test_an_endpoint_that_never_answers_does_not_hold_up_a_send(
    cli, settings, arxiv, receiver, monkeypatch
):
    settings = get_settings()  # with the local arXiv in them
    register(cli, receiver, "digest.built", "digest.sent")
    receiver.default = Script(hang=True)
    fetch.fetch(settings)

    report = send.send(settings)

    assert report.sent == 2 and set(outbox(settings)) == {ADA, "bo@example.org"}
    assert [(row.event, row.status, row.attempts) for row in rows(settings)] == [
        ("digest.built", "pending", 0),
        ("digest.sent", "pending", 0),
    ]
    assert receiver.received == []  # sending wrote the rows; nothing was posted


def test_a_run_without_a_worker_bounds_its_wait_for_a_hanging_endpoint(
    cli, settings, arxiv, receiver, monkeypatch
):
    settings = set_env(monkeypatch, webhook_timeout="0.3", webhook_send_budget="0.1")
    register(cli, receiver, "digest.sent")
    receiver.default = Script(hang=True)

    output = cli("run").output

    assert "2 sent" in output and set(outbox(settings)) == {ADA, "bo@example.org"}
    (row,) = rows(settings)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "no answer within 0.3 s" in row.detail
    assert "1 to retry later" in output


# ---------------------------------------------------------------- the worker


def test_the_worker_posts_what_its_steps_wrote(cli, settings, arxiv, receiver):
    register(cli, receiver, "digest.built", "digest.sent")
    tasks = load_tasks()
    tasks.huey.immediate = True
    try:
        tasks.daily_job().get()
    finally:
        tasks.huey.immediate = False
    assert receiver.events() == ["digest.built", "digest.sent"]
    assert {row.status for row in rows(settings)} == {"sent"}


def test_the_worker_posts_due_webhooks_every_minute(settings):
    assert minutes_of(load_tasks(), "post_webhooks") == list(range(60))


def test_a_real_worker_on_redis_posts_the_webhooks(
    cli, settings, receiver, monkeypatch, redis_url, tmp_path
):
    unsubscribed_with_a_webhook(cli, settings, receiver)
    with tasks_on_redis(redis_url, monkeypatch) as tasks:
        tasks.huey.flush()
        try:
            with WorkerProcess(tmp_path) as worker:
                tasks.post_webhooks()
                worker.wait_for(lambda: len(receiver.received) == 1, "a webhook POST")
                worker.wait_for(lambda: rows(settings)[0].status == "sent", "the row sent")
        finally:
            tasks.huey.flush()
    (request,) = receiver.received
    assert request.valid and request.payload["type"] == "subscriber.unsubscribed"
    assert worker.code == 0, worker.output()


def readme_verify():
    """The `verify` the README's Webhooks section shows, as a reader would copy it."""
    section = (REPO / "README.md").read_text().split("\n## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 (the project's own README)
    return namespace["verify"]


def test_the_readme_s_verify_accepts_a_delivery_and_refuses_a_tampered_one(
    cli, settings, receiver, example_topics
):
    register(cli, receiver, "subscriber.unsubscribed")
    subscribe(cli, ADA, "SLAM")
    cli("subscribers", "remove", ADA)
    posting.post_due(settings)
    (request,) = receiver.received
    verify_as_documented = readme_verify()
    assert verify_as_documented(receiver.secret, request.headers, request.body)
    assert not verify_as_documented(receiver.secret, request.headers, request.body + b" ")


def test_every_event_is_documented_with_its_payload():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    for event in EVENTS:
        assert f"`{event}`" in section
    assert "webhook-signature" in section and "hmac" in section


def test_a_spec_is_checked_whatever_the_door():
    spec = WebhookSpec(" https://example.org/h ", ("digest.sent", "digest.sent"))
    assert (spec.url, spec.events) == ("https://example.org/h", ("digest.sent",))
    with pytest.raises(InvalidInput, match="at least one event"):
        WebhookSpec("https://example.org/h", ())
