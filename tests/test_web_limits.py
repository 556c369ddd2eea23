"""The web app's limits: one bad request costs a refusal, never a worker or a 500.

A body larger than any form is refused before it is read; a NUL anywhere in an address or a
form is refused before a query sees it; a database locked by another process answers 503 with
Retry-After long before gunicorn's timeout; an https site asks for https only (HSTS), and no
server names its version.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time

import pytest
import requests

from newsletter import store
from newsletter.db import session_scope
from newsletter.models import SubscriberStatus
from newsletter.web import create_app
from newsletter.web.common import HSTS
from newsletter.web.limits import LOCK_WAIT, MAX_BODY, RETRY_AFTER
from tests.helpers import DAY1, set_env, write_locked
from tests.web_helpers import (
    FORM,
    ONE_CLICK,
    SERVERS,
    app_after_a_digest,
    csrf_token,
    procfile_web,
    running,
    state,
    subscribe_form,
    token_path,
)

ADA = "ada@example.org"
BO = "bo@example.org"

ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For what happens before any query (bodies, headers): once is enough."""


@pytest.fixture
def app(settings, cli, example_topics):
    return app_after_a_digest(settings, cli, ADA, BO)


@pytest.fixture
def client(app):
    return app.test_client()


def is_our_page(response, title: str) -> bool:
    """The app's own message page, not Werkzeug's default one."""
    html = response.get_data(as_text=True)
    return f"<h1>{title}</h1>" in html and '<html lang="en"' in html


# ---------------------------------------------------------------- request bodies


def answer_to_unfinished_request(port: int, head: str, body_start: bytes) -> tuple[int, str]:
    """Send a request's head and the start of its body, never the rest, and read the answer.

    A server that read the whole body before answering would wait for the rest: the answer
    comes only if the body is refused unread.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode() + body_start)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, response.read().decode()


HUNDRED_MB = 100 * 1024 * 1024


@ONE_DATABASE
@pytest.mark.parametrize("server", SERVERS)
def test_a_huge_body_is_refused_before_it_is_read(settings, cli, example_topics, tmp_path, server):
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: {HUNDRED_MB}\r\n\r\n"
    )
    with running(server, tmp_path / "server.log") as port:
        started = time.monotonic()
        status, html = answer_to_unfinished_request(port, head, b"email=" + b"a" * 4096)
        assert time.monotonic() - started < 5
        assert status == 413
        assert "<h1>This request is too large</h1>" in html and 'lang="en"' in html
        # The server goes on serving.
        assert requests.get(f"http://127.0.0.1:{port}/subscribe", timeout=5).status_code == 200


@ONE_DATABASE
@pytest.mark.parametrize("server", SERVERS)
def test_a_chunked_body_is_read_no_further_than_the_limit(
    settings, cli, example_topics, tmp_path, server
):
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    data = b"email=" + b"a" * (2 * MAX_BODY)
    chunk = f"{len(data):x}\r\n".encode() + data + b"\r\n"  # and no last chunk: it never ends
    with running(server, tmp_path / "server.log") as port:
        status, html = answer_to_unfinished_request(port, head, chunk)
    assert status == 413, html
    assert "<h1>This request is too large</h1>" in html


@ONE_DATABASE
def test_the_limit_is_far_above_any_form_and_its_page_is_ours(client):
    fits = client.post("/subscribe", data=b"x=" + b"a" * (MAX_BODY - 2), content_type=FORM)
    assert fits.status_code == 400  # no CSRF token: the form was read, and refused for that
    assert "This form expired" in fits.get_data(as_text=True)
    too_large = client.post("/subscribe", data=b"x=" + b"a" * (MAX_BODY - 1), content_type=FORM)
    assert too_large.status_code == 413
    assert is_our_page(too_large, "This request is too large")
    assert too_large.headers["X-Frame-Options"] == "DENY"


# ---------------------------------------------------------------- NUL characters


def nul_addresses(settings) -> list[str]:
    return [
        token_path(settings, "unsubscribe", ADA) + "%00",
        token_path(settings, "preferences", ADA) + "?topic=%00",
        f"/digests/{DAY1}%00",
        f"/digests/{DAY1}/slam%00",
        f"/digests/{DAY1}/for/x%00",
        "/topics/sl%00am/feed.xml",
        "/subscribe?email=a%00b",
        "/subscribe?topic=sl%00am",
        "/subscribe?to%00pic=slam",
        "/admin/preview?email=ada%00@example.org",
        "/static/site.css%00",
    ]


def test_a_nul_anywhere_in_an_address_is_refused(settings, client, subtests):
    for path in nul_addresses(settings):
        with subtests.test(path):
            response = client.get(path)
            assert response.status_code in (400, 404)
            assert is_our_page(response, "Not found") or is_our_page(
                response, "This request is not valid"
            )


def test_a_nul_in_a_form_is_refused_and_changes_nothing(settings, client, outbox_mail):
    mail_before = outbox_mail()
    cy = "cy@example.org"
    for fields in ({"email": "cy\x00@example.org"}, {"email": cy, "topics": "sl\x00am"}):
        page = client.get("/subscribe").get_data(as_text=True)
        data = {"topics": "slam", "language": "en", **fields, "csrf_token": csrf_token(page)}
        response = client.post("/subscribe", data=data)
        assert response.status_code == 400
        assert is_our_page(response, "This request is not valid")
    assert state(settings, cy) is None and outbox_mail() == mail_before

    one_click = client.post(
        token_path(settings, "unsubscribe", ADA), data=ONE_CLICK + "&x=%00", content_type=FORM
    )
    assert one_click.status_code == 400
    assert state(settings, ADA).status == "active"


@pytest.fixture
def outbox_mail(settings):
    """The mail in the outbox now (the digests of the `app` fixture are there already)."""
    return lambda: sorted(settings.outbox_dir.rglob("*.eml"))


# ---------------------------------------------------------------- a locked database


def test_a_web_request_gives_up_on_a_lock_well_before_gunicorn_would_kill_it():
    command = procfile_web(port=8000)
    timeout = float(command[command.index("--timeout") + 1])
    # Room for the rest of the request after the wait, and for two waits in one request.
    assert 2 * LOCK_WAIT + 10 <= timeout


def timed(request):
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def test_a_locked_database_answers_503_with_retry_after_in_time(settings, client, outbox_mail):
    mail_before = outbox_mail()
    unsubscribe = token_path(settings, "unsubscribe", ADA)
    page = client.get("/subscribe").get_data(as_text=True)
    form = {"email": "cy@example.org", "topics": "slam", "language": "en"}
    form["csrf_token"] = csrf_token(page)
    worker_waited: list[float] = []

    def worker_write():
        # The worker and the CLI wait longer than a web request: this one outlasts the lock.
        started = time.monotonic()
        with session_scope(settings) as session:
            bo = store.get_subscriber(session, BO)
            store.set_status(session, bo, SubscriberStatus.unsubscribed, "cli")
        worker_waited.append(time.monotonic() - started)

    worker = threading.Thread(target=worker_write)
    with write_locked(settings, at_most=2 * LOCK_WAIT + 10):
        worker.start()
        for request in (
            lambda: client.post(unsubscribe, data=ONE_CLICK, content_type=FORM),
            lambda: client.post("/subscribe", data=form),
        ):
            response, took = timed(request)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == str(RETRY_AFTER)
            assert is_our_page(response, "Busy for a moment")
            # It waited for the lock, and answered well inside gunicorn's 30-second timeout.
            assert LOCK_WAIT * 0.8 <= took < LOCK_WAIT + 5
        assert worker.is_alive(), "the worker's write gave up as soon as the web's"
    worker.join(timeout=30)
    assert worker_waited and worker_waited[0] > 2 * LOCK_WAIT * 0.8

    # The refused requests saved nothing, and sent nothing; once the lock is gone they work.
    assert state(settings, ADA).status == "active" and state(settings, "cy@example.org") is None
    assert outbox_mail() == mail_before
    assert state(settings, BO).status == "unsubscribed"
    assert client.post(unsubscribe, data=ONE_CLICK, content_type=FORM).status_code == 200
    assert state(settings, ADA).status == "unsubscribed"
    assert subscribe_form(client, "cy@example.org", "slam").status_code == 200
    assert state(settings, "cy@example.org").status == "pending"
    assert len(outbox_mail()) == len(mail_before) + 1


# ---------------------------------------------------------------- headers


@ONE_DATABASE
def test_only_an_https_site_asks_for_https_only(settings, monkeypatch, client):
    https = create_app(set_env(monkeypatch, BASE_URL="https://digest.example.org")).test_client()
    for path in ("/subscribe", "/digests/", "/nowhere", "/feed.xml"):
        assert https.get(path).headers["Strict-Transport-Security"] == HSTS
        assert "Strict-Transport-Security" not in client.get(path).headers
    assert "max-age=31536000" in HSTS and "includeSubDomains" in HSTS
    too_large = https.post("/subscribe", data=b"x" * (MAX_BODY + 1), content_type=FORM)
    assert too_large.status_code == 413 and too_large.headers["Strict-Transport-Security"] == HSTS


@ONE_DATABASE
@pytest.mark.parametrize("server", SERVERS)
def test_no_server_names_its_version(settings, cli, monkeypatch, tmp_path, server):
    cli("db", "upgrade")
    set_env(monkeypatch, BASE_URL="https://digest.example.org")
    with running(server, tmp_path / "server.log") as port:
        for path in ("/healthz", "/digests/", "/nowhere"):
            response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            names = response.raw.headers.getlist("Server")
            assert len(names) == 1 and not re.search(r"[\d/]", names[0]), names
            assert response.headers["Strict-Transport-Security"] == HSTS
