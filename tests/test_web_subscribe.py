"""Subscribing on the web: the form, double opt-in, no enumeration, no mail-bombing."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.timed import TimestampSigner

from newsletter.config import get_settings
from newsletter.daily import send
from newsletter.models import utcnow
from newsletter.web import create_app, optin
from tests.helpers import (
    DAY1,
    WorkerProcess,
    counted,
    paper,
    set_env,
    store_papers,
    subscribe,
)
from tests.smtp_server import LocalSMTPServer
from tests.web_helpers import (
    FORM,
    ONE_CLICK,
    confirm_path,
    csrf_token,
    html_of,
    local_smtp,
    mail_to,
    running,
    state,
    submit,
    subscribe_form,
    text_of,
    token_path,
)

ADA = "ada@example.org"


@pytest.fixture
def smtp(settings, monkeypatch):
    with local_smtp(monkeypatch) as server:
        yield server


@pytest.fixture
def config(smtp):
    """The settings with the SMTP server in them (`settings` is from before)."""
    return get_settings()


@pytest.fixture
def app(config, cli, example_topics):
    return create_app(config)


@pytest.fixture
def client(app):
    return app.test_client()


def confirm(client, path: str):
    """Open a confirmation link and press its button."""
    return submit(client, path, {})


# ---------------------------------------------------------------- the form


def test_form_has_labelled_topics_with_descriptions_and_languages(client):
    page = client.get("/subscribe")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<label for="email-field">' in html and 'id="email-field"' in html
    assert 'type="email"' in html and 'autocomplete="email"' in html
    assert "<legend>Topics</legend>" in html
    for slug, name in (("slam", "SLAM"), ("visual-localization", "Visual Localization")):
        assert f'<label for="topic-{slug}">{name}</label>' in html
        assert f'aria-describedby="topic-{slug}-about"' in html
    assert "Simultaneous localization and mapping." in html  # SLAM's one-line description
    assert '<label for="language-field">' in html
    assert '<option value="zh-TW" lang="zh-TW"' in html and '<option value="en"' in html
    assert '<html lang="en"' in html
    assert csrf_token(html)


def test_a_topic_can_be_chosen_in_the_address(client):
    html = client.get("/subscribe?topic=nerf").get_data(as_text=True)
    assert re.search(r'value="nerf" checked', html)
    assert not re.search(r'value="slam" checked', html)


def test_subscribing_sends_one_confirmation_and_nothing_else(settings, client, smtp):
    answer = subscribe_form(client, ADA, "slam", "nerf", language="zh")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    now = state(settings, ADA)
    assert (now.status, now.topics, now.language) == ("pending", ("SLAM", "NeRF"), "zh")
    assert now.events == (("requested", "web"), ("confirmation sent", "web"))

    (message,) = smtp.messages
    assert message["To"] == ADA and message["Subject"].startswith("Confirm your subscription")
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert "List-Unsubscribe" not in message and "List-Id" not in message  # not list mail
    assert message["Message-ID"]
    assert "SLAM, NeRF" in text_of(message) and "简体中文" in text_of(message)
    assert "2 days" in text_of(message)
    assert 'href="http://localhost:8000/confirm/' in html_of(message)
    assert confirm_path(message).startswith("/confirm/")


def test_a_pending_subscriber_gets_no_digest(settings, config, client, smtp):
    subscribe_form(client, ADA, "slam")
    smtp.clear()
    store_papers(settings, "SLAM", paper(1))
    report = send.send(config, DAY1)
    assert report.sent == 0 and smtp.messages == []


def test_confirming_takes_a_button_press(settings, config, client, smtp):
    subscribe_form(client, ADA, "slam", language="de")
    path = confirm_path(smtp.messages[0])

    for _ in range(3):  # a scanner fetching the link changes nothing
        page = client.get(path)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert f'<form method="post" action="{path}">' in html
        assert ADA in html and "SLAM" in html and "Deutsch" in html
    assert client.head(path).status_code == 200
    assert state(settings, ADA).status == "pending"

    done = confirm(client, path)
    assert done.status_code == 200 and "You are subscribed" in done.get_data(as_text=True)
    assert 'href="/preferences/' in done.get_data(as_text=True)
    now = state(settings, ADA)
    assert (now.status, now.topics, now.language) == ("active", ("SLAM",), "de")
    assert now.events[-1] == ("confirmed", "web")

    store_papers(settings, "SLAM", paper(1))
    smtp.clear()
    assert send.send(config, DAY1).sent == 1
    assert mail_to(smtp, ADA)[0]["Subject"].startswith("arXiv digest")


def test_confirm_post_needs_the_pages_csrf_token(settings, client, app, smtp):
    subscribe_form(client, ADA, "slam")
    path = confirm_path(smtp.messages[0])
    assert client.post(path).status_code == 400
    assert app.test_client().post(path, data={"csrf_token": "forged"}).status_code == 400
    assert state(settings, ADA).status == "pending"


def test_a_second_click_changes_nothing_made_since(settings, client, smtp):
    subscribe_form(client, ADA, "slam")
    path = confirm_path(smtp.messages[0])
    confirm(client, path)
    preferences = token_path(settings, "preferences", ADA)
    submit(client, preferences, {"action": "save", "topics": ["nerf"], "language": "en"})
    assert state(settings, ADA).topics == ("NeRF",)

    again = client.get(path)
    assert again.status_code == 200 and "You are subscribed" in again.get_data(as_text=True)
    assert submit(client, "/subscribe", {}, action=path).status_code == 200  # a late POST
    assert state(settings, ADA).topics == ("NeRF",)
    assert [kind for kind, _ in state(settings, ADA).events].count("confirmed") == 1


# ---------------------------------------------------------------- no enumeration


def _answer(client, email: str) -> tuple[int, str]:
    page = subscribe_form(client, email, "slam")
    html = page.get_data(as_text=True).replace(email, "ADDRESS")
    return page.status_code, html


def test_the_answer_is_the_same_whoever_the_address_is(settings, cli, client, smtp):
    subscribe(cli, "active@example.org", "SLAM")
    subscribe(cli, "left@example.org", "SLAM")
    cli("subscribers", "remove", "left@example.org")
    subscribe_form(client, "pending@example.org", "nerf")  # asked a moment ago

    reference = _answer(client, "new@example.org")
    assert reference[0] == 200
    for email in ("active@example.org", "left@example.org", "pending@example.org"):
        assert _answer(client, email) == reference, email


def test_a_known_address_changes_only_when_its_owner_confirms(settings, cli, client, smtp):
    subscribe(cli, "active@example.org", "SLAM")
    subscribe_form(client, "active@example.org", "nerf", language="fr")
    now = state(settings, "active@example.org")
    assert (now.status, now.topics, now.language) == ("active", ("SLAM",), "en")
    # The owner is asked, as anyone would be; the link carries what was asked for.
    confirm(client, confirm_path(mail_to(smtp, "active@example.org")[0]))
    now = state(settings, "active@example.org")
    assert (now.status, now.topics, now.language) == ("active", ("NeRF",), "fr")


def test_an_unsubscribed_address_comes_back_only_through_confirmation(
    settings, config, cli, client, smtp
):
    subscribe(cli, "left@example.org", "SLAM")
    cli("subscribers", "remove", "left@example.org")
    subscribe_form(client, "left@example.org", "slam")
    assert state(settings, "left@example.org").status == "unsubscribed"
    store_papers(settings, "SLAM", paper(1))
    before = len(smtp.messages)
    assert send.send(config, DAY1).sent == 0
    assert len(smtp.messages) == before

    confirm(client, confirm_path(mail_to(smtp, "left@example.org")[-1]))
    assert state(settings, "left@example.org").status == "active"


# ---------------------------------------------------------------- no mail-bombing


def test_repeated_requests_send_one_confirmation(settings, client, smtp):
    for _ in range(5):
        assert subscribe_form(client, ADA, "slam").status_code == 200
    assert len(smtp.messages) == 1
    kinds = [kind for kind, _ in state(settings, ADA).events]
    assert kinds.count("confirmation sent") == 1 and kinds.count("requested") == 5
    assert kinds.count("confirmation held back") == 4


def test_after_the_window_a_new_link_replaces_the_old(settings, client, smtp, monkeypatch):
    subscribe_form(client, ADA, "slam")
    later = utcnow() + timedelta(seconds=settings.confirm_window + 1)
    monkeypatch.setattr(optin, "utcnow", lambda: later)
    subscribe_form(client, ADA, "nerf")
    first, second = (confirm_path(message) for message in smtp.messages)

    stale = client.get(first)
    assert stale.status_code == 400 and "not valid" in stale.get_data(as_text=True)
    confirm(client, second)
    assert state(settings, ADA).topics == ("NeRF",)


def test_the_window_is_a_setting(settings, cli, monkeypatch, smtp, example_topics):
    set_env(monkeypatch, CONFIRM_WINDOW="0")
    client = create_app(get_settings()).test_client()
    for _ in range(3):
        subscribe_form(client, ADA, "slam")
    assert len(smtp.messages) == 3


def test_requests_at_the_same_moment_send_one_confirmation(settings, app, smtp):
    clients = [app.test_client() for _ in range(6)]
    tokens = [csrf_token(c.get("/subscribe").get_data(as_text=True)) for c in clients]
    answers: list[int] = []
    start = threading.Barrier(len(clients))

    def ask(client, token):
        start.wait()
        data = {"csrf_token": token, "email": ADA, "topics": ["slam"], "language": "en"}
        answers.append(client.post("/subscribe", data=data).status_code)

    threads = [
        threading.Thread(target=ask, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200] * len(clients)
    assert len(smtp.messages) == 1
    assert state(settings, ADA).status == "pending"


def test_a_request_is_one_transaction_of_few_statements(settings, app):
    jobs = []
    app.config[optin.QUEUE_KEY] = jobs.append
    client = app.test_client()
    token = csrf_token(client.get("/subscribe").get_data(as_text=True))
    data = {"csrf_token": token, "email": ADA, "topics": ["slam", "nerf"], "language": "en"}

    with counted(settings) as statements:
        assert client.post("/subscribe", data=data).status_code == 200
    with counted(settings) as again:  # a known address, asked for again
        assert client.post("/subscribe", data=data).status_code == 200

    said, said_again = (
        [" ".join(statement.split()).upper() for statement in run] for run in (statements, again)
    )
    # The topics read once, for the form's check and the request alike; the address looked
    # up once, then inserted (no savepoint around it), then its topics.
    assert sum(" FROM TOPICS" in statement for statement in said) == 1
    assert len([s for s in said if s.startswith("SELECT") and " FROM SUBSCRIBERS" in s]) == 1
    assert not [s for s in said + said_again if s.startswith(("SAVEPOINT", "RELEASE"))]
    assert sum(s.startswith("INSERT INTO SUBSCRIBERS ") for s in said) == 1
    # That INSERT claims its confirmation: no UPDATE; a known address's claim is one.
    assert not [s for s in said if s.startswith("UPDATE SUBSCRIBERS ")]
    assert sum(s.startswith("UPDATE SUBSCRIBERS ") for s in said_again) == 1
    # A known address is never inserted again: on PostgreSQL an INSERT that finds it would
    # still use up a number of the ids' sequence, at every request.
    assert not [s for s in said_again if s.startswith("INSERT INTO SUBSCRIBERS ")]
    assert len(jobs) == 1  # the second request held back
    now = state(settings, ADA)
    assert (now.status, now.topics) == ("pending", ("SLAM", "NeRF"))
    assert now.events == (
        ("requested", "web"),
        ("requested", "web"),
        ("confirmation held back", "web"),
    )


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "data, error",
    [
        ({"email": "not-an-address", "topics": ["slam"], "language": "en"}, "email address"),
        ({"email": "", "topics": ["slam"], "language": "en"}, "email address"),
        ({"email": ADA, "topics": [], "language": "en"}, "at least one topic"),
        ({"email": ADA, "topics": ["slam", "no-such-topic"], "language": "en"}, "from the list"),
        ({"email": ADA, "topics": ["slam"], "language": "xx-invalid-"}, "language"),
        ({"email": ADA, "topics": ["slam"], "language": "tlh"}, "language"),  # valid, not offered
        ({"email": ADA, "topics": ["slam"]}, "language"),
    ],
)
def test_bad_input_is_explained_and_sends_nothing(settings, client, smtp, data, error):
    answer = submit(client, "/subscribe", data)
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "Please check the form" in html and error in html
    assert 'role="alert"' in html
    assert smtp.messages == [] and state(settings, ADA) is None


def test_typed_values_come_back_escaped(client, smtp):
    answer = submit(
        client,
        "/subscribe",
        {"email": '"><script>alert(1)</script>', "topics": ["nerf"], "language": "de"},
    )
    html = answer.get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert re.search(r'value="nerf" checked', html)
    assert re.search(r'value="de" lang="de" selected', html)


def test_subscribe_needs_the_pages_csrf_token(settings, client, app, smtp):
    data = {"email": ADA, "topics": ["slam"], "language": "en"}
    assert client.post("/subscribe", data=data).status_code == 400
    assert app.test_client().post("/subscribe", data={**data, "csrf_token": "x"}).status_code == 400
    assert smtp.messages == [] and state(settings, ADA) is None


def test_a_mail_server_that_is_down_is_logged_and_the_next_request_sends(
    settings, monkeypatch, cli, example_topics
):
    # The confirmation is sent after the answer (by a worker): the page cannot tell, the
    # subscriber's history does, and the claim is released for the next request.
    set_env(monkeypatch, SMTP_URL="smtp://127.0.0.1:9", SMTP_TIMEOUT="2")
    client = create_app(get_settings()).test_client()
    answer = subscribe_form(client, ADA, "slam")
    assert answer.status_code == 200 and "Check your inbox" in answer.get_data(as_text=True)
    assert state(settings, ADA).events[-1] == ("confirmation failed", "web")
    with local_smtp(monkeypatch) as server:
        client = create_app(get_settings()).test_client()
        assert subscribe_form(client, ADA, "slam").status_code == 200
        assert len(server.messages) == 1


def test_a_queue_that_takes_nothing_is_said_and_the_next_request_sends(settings, app, smtp):
    def refusing(job):
        raise ConnectionError("Redis is down")

    app.config[optin.QUEUE_KEY] = refusing
    answer = subscribe_form(app.test_client(), ADA, "slam")
    assert answer.status_code == 503 and "try again" in answer.get_data(as_text=True)
    assert state(settings, ADA).events[-1] == ("confirmation failed", "web")
    app.config[optin.QUEUE_KEY] = optin.to_worker
    assert subscribe_form(app.test_client(), ADA, "slam").status_code == 200
    assert len(smtp.messages) == 1


@pytest.mark.parametrize(
    "refusal",
    [{"reject_senders": {"digest@localhost"}}, {"reject_data": 1}],
    ids=["sender refused at MAIL", "message refused after DATA"],
)
def test_a_relay_refusing_the_sender_or_the_message_never_blames_the_address(
    settings, monkeypatch, cli, example_topics, caplog, refusal
):
    with LocalSMTPServer(**refusal) as server:
        set_env(monkeypatch, SMTP_URL=server.url)
        answer = subscribe_form(create_app(get_settings()).test_client(), ADA, "slam")

    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "cannot deliver to this address" not in html
    assert state(settings, ADA).events[-1] == ("confirmation failed", "web")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("not for its address" in message for message in errors), errors


def test_a_relay_refusing_the_address_is_logged_and_claims_nothing(
    settings, monkeypatch, cli, example_topics
):
    with LocalSMTPServer(reject_recipients={ADA}) as server:
        set_env(monkeypatch, SMTP_URL=server.url)
        client = create_app(get_settings()).test_client()
        for _attempt in range(2):  # a refusal keeps no window: asking again tries again
            assert subscribe_form(client, ADA, "slam").status_code == 200
    kinds = [kind for kind, _ in state(settings, ADA).events]
    assert kinds.count("confirmation failed") == 2 and "confirmation held back" not in kinds


@pytest.mark.parametrize("offers_smtputf8", [True, False])
def test_international_addresses_get_a_confirmation_when_the_relay_can_carry_them(
    settings, monkeypatch, cli, example_topics, offers_smtputf8
):
    with LocalSMTPServer(smtputf8=offers_smtputf8) as server:
        set_env(monkeypatch, SMTP_URL=server.url)
        client = create_app(get_settings()).test_client()
        # An internationalised domain travels in IDNA: every relay takes it.
        assert subscribe_form(client, "user@bücher.example", "slam").status_code == 200
        for address in ("用户@例子.广告", "ｆｕｌｌ@example.org"):
            # Whether the relay takes it is known after the answer: the same page either way.
            assert subscribe_form(client, address, "slam").status_code == 200
        recipients = sorted(message.rcpt_tos[0] for message in server.messages)
    expected = ["user@xn--bcher-kva.example"]
    if offers_smtputf8:
        expected += ["ｆｕｌｌ@example.org", "用户@xn--fsqu00a.xn--4rr70v"]
    assert recipients == sorted(expected)


def test_without_smtp_the_confirmation_goes_to_the_outbox(settings, cli, example_topics):
    client = create_app(settings).test_client()
    assert subscribe_form(client, ADA, "slam").status_code == 200
    files = list(settings.outbox_dir.glob("*.eml"))
    assert len(files) == 1 and b"/confirm/" in files[0].read_bytes()


# ---------------------------------------------------------------- the link itself


def _resigned(settings, path: str, *, age: int = 0, **changes) -> str:
    """The confirmation token of `path`, its payload changed, signed `age` seconds ago."""
    secret = settings.secret()
    payload = URLSafeTimedSerializer(secret, salt="confirm").loads(path.rsplit("/", 1)[1])
    payload.update(changes)
    signer_time = TimestampSigner.get_timestamp

    def earlier(self):
        return signer_time(self) - age

    TimestampSigner.get_timestamp = earlier
    try:
        return "/confirm/" + URLSafeTimedSerializer(secret, salt="confirm").dumps(payload)
    finally:
        TimestampSigner.get_timestamp = signer_time


def test_an_expired_link_says_so_and_changes_nothing(settings, client, smtp):
    subscribe_form(client, ADA, "slam")
    path = confirm_path(smtp.messages[0])
    old = _resigned(settings, path, age=int(settings.confirm_max_age) + 60)
    # Opened, or posted to with a good CSRF token (from the page of a good link).
    for answer in (client.get(old), submit(client, path, {}, action=old)):
        assert answer.status_code == 400
        html = answer.get_data(as_text=True)
        assert "This link has expired" in html and 'href="/subscribe"' in html
    assert state(settings, ADA).status == "pending"
    assert client.get(_resigned(settings, path, age=60)).status_code == 200  # still young


def test_tampered_links_are_refused(settings, client, smtp, subtests):
    subscribe_form(client, ADA, "slam")
    path = confirm_path(smtp.messages[0])
    token = path.rsplit("/", 1)[1]
    forged = URLSafeTimedSerializer("another secret", salt="confirm").dumps({"id": "x"})
    bad = {
        "flipped": "/confirm/" + ("A" if token[0] != "A" else "B") + token[1:],
        "truncated": path[:-5],
        "garbage": "/confirm/garbage",
        "other secret": "/confirm/" + forged,
        "unsubscribe token": token_path(settings, "unsubscribe", ADA).replace(
            "/unsubscribe/", "/confirm/"
        ),
        "not a dict": "/confirm/"
        + URLSafeTimedSerializer(settings.secret(), salt="confirm").dumps("id"),
        "missing fields": "/confirm/"
        + URLSafeTimedSerializer(settings.secret(), salt="confirm").dumps({"id": "x"}),
        "other send time": _resigned(settings, path, sent=1),
    }
    for kind, bad_path in bad.items():
        with subtests.test(kind):
            answer = client.get(bad_path)
            assert answer.status_code == 400
            assert "This link is not valid" in answer.get_data(as_text=True)
    assert state(settings, ADA).status == "pending"


def test_a_link_no_longer_works_once_the_address_left(settings, cli, client, smtp):
    subscribe_form(client, ADA, "slam")
    path = confirm_path(smtp.messages[0])
    confirm(client, path)
    unsubscribe = token_path(settings, "unsubscribe", ADA)
    assert client.post(unsubscribe, data=ONE_CLICK, content_type=FORM).status_code == 200
    assert client.get(path).status_code == 400
    assert state(settings, ADA).status == "unsubscribed"


def test_a_link_whose_topics_are_gone_is_refused(settings, cli, client, smtp):
    subscribe_form(client, ADA, "slam")
    cli("topics", "remove", "SLAM")
    assert client.get(confirm_path(smtp.messages[0])).status_code == 400


# ---------------------------------------------------------------- queued, and sent by whom


def form_post(port: int) -> Callable[[str], int]:
    """Post the subscribe form to the server on `port` as a browser does (its cookie, its CSRF
    token); the status of each answer."""
    browser = requests.Session()
    page = browser.get(f"http://127.0.0.1:{port}/subscribe", timeout=10)
    fields = {"csrf_token": csrf_token(page.text), "topics": ["slam"], "language": "en"}

    def post(email: str) -> int:
        url = f"http://127.0.0.1:{port}/subscribe"
        return browser.post(url, data={**fields, "email": email}, timeout=10).status_code

    return post


def until(condition: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within 30 s:\n{log.read_text()}"
        time.sleep(0.1)


@pytest.mark.queued_confirmations
def test_under_gunicorn_the_confirmation_is_queued_and_a_worker_sends_it(
    settings, cli, example_topics, smtp, tmp_path
):
    with running("gunicorn", tmp_path / "web.log") as port:
        post = form_post(port)
        assert post(ADA) == 200
        assert post(ADA) == 200  # asked twice: one confirmation all the same
    assert smtp.messages == []  # queued, not sent: no worker was running
    assert state(settings, ADA).events == (
        ("requested", "web"),
        ("requested", "web"),
        ("confirmation held back", "web"),
    )
    with WorkerProcess(tmp_path) as worker:
        worker.wait_for(lambda: len(smtp.messages) == 1, "the confirmation")
        worker.wait_for(lambda: "send_confirmation" in worker.output(), "the task's log line")
    (message,) = smtp.messages
    assert message["To"] == ADA and confirm_path(message).startswith("/confirm/")
    assert state(settings, ADA).events[-1] == ("confirmation sent", "web")


@pytest.mark.queued_confirmations
def test_newsletter_serve_alone_sends_the_confirmation(
    settings, cli, example_topics, smtp, tmp_path
):
    log = tmp_path / "serve.log"
    with running("newsletter serve", log) as port:
        post = form_post(port)
        assert post(ADA) == 200
        until(lambda: len(smtp.messages) == 1, "confirmation from newsletter serve", log)
        assert post(ADA) == 200  # within the window: held back
        assert post("bo@example.org") == 200
        until(lambda: len(smtp.messages) == 2, "second address's confirmation", log)
    assert sorted(message["To"] for message in smtp.messages) == [ADA, "bo@example.org"]
    kinds = [kind for kind, _ in state(settings, ADA).events]
    assert kinds.count("confirmation sent") == 1 and kinds.count("confirmation held back") == 1
