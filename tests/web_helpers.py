"""Helpers the web tests share: forms with their CSRF token, the database's view of a
subscriber, the links in the mail that reached the local SMTP server, and the app under a real
server (gunicorn as the Procfile runs it, or `newsletter serve`) in a process of its own."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from newsletter import store, tokens
from newsletter.config import Settings
from newsletter.daily import send
from newsletter.db import session_scope
from newsletter.web import create_app
from tests.helpers import DAY1, REPO, free_port, paper, set_env, store_papers, subscribe
from tests.smtp_server import LocalSMTPServer

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
CONFIRM_LINK = re.compile(r"https?://\S+/confirm/[A-Za-z0-9_.\-]+")
ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@contextmanager
def local_smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSMTPServer]:
    """A real SMTP server on loopback, and the settings pointed at it."""
    with LocalSMTPServer() as server:
        set_env(monkeypatch, SMTP_URL=server.url)
        yield server


def app_after_a_digest(settings: Settings, cli, *readers: str):
    """The web app once `readers` (on SLAM) were sent a digest: their links have pages."""
    for reader in readers:
        subscribe(cli, reader, "SLAM")
    store_papers(settings, "SLAM", paper(1))
    send.send(settings, DAY1)
    return create_app(settings)


def csrf_token(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def submit(client, page_path: str, data: dict, action: str | None = None):
    """Load a page, then post a form of it with the page's CSRF token, as a browser does."""
    page = client.get(page_path)
    assert page.status_code == 200, page.get_data(as_text=True)
    fields = {"csrf_token": csrf_token(page.get_data(as_text=True)), **data}
    return client.post(action or page_path, data=fields)


def subscribe_form(client, email: str, *topics: str, language: str = "en"):
    return submit(
        client, "/subscribe", {"email": email, "topics": list(topics), "language": language}
    )


@dataclass(frozen=True)
class State:
    status: str
    topics: tuple[str, ...]
    language: str
    paused_until: date | None
    events: tuple[tuple[str, str], ...]
    """(kind, source) of every event, oldest first."""
    follows: tuple[str, ...] = ()
    """The authors they follow, as they wrote them, in the order they were added."""
    ranking: bool = True


def state(settings: Settings, email: str) -> State | None:
    """What the database holds about an address; None when it is not there."""
    with session_scope(settings) as session:
        subscriber = store.find_subscriber(session, email)
        if subscriber is None:
            return None
        return State(
            subscriber.status.value,
            tuple(topic.name for topic in subscriber.topics),
            subscriber.language,
            subscriber.paused_until,
            tuple((event.kind, event.source) for event in store.events_of(session, subscriber)),
            tuple(follow.name for follow in store.follows_of(session, subscriber.id)),
            subscriber.ranking,
        )


def public_id(settings: Settings, email: str) -> str:
    with session_scope(settings) as session:
        return store.get_subscriber(session, email).public_id


def token_path(settings: Settings, purpose: str, email: str) -> str:
    """The path of a subscriber's page for `purpose` (unsubscribe, preferences)."""
    token = tokens.make_token(settings.secret(), purpose, public_id(settings, email))
    return f"/{purpose}/{token}"


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def confirm_path(message: EmailMessage) -> str:
    """The path of the confirmation link in a confirmation email (same in both parts)."""
    links = set(CONFIRM_LINK.findall(text_of(message)))
    assert len(links) == 1, links
    (link,) = links
    assert link in html_of(message)
    return urlsplit(link).path


def mail_to(server: LocalSMTPServer, email: str) -> list[EmailMessage]:
    return [message for message in server.messages if message["To"] == email]


# ---------------------------------------------------------------- a real server, its own process


def procfile_web(port: int) -> list[str]:
    """The Procfile's `web` command, listening on 127.0.0.1:`port` rather than every address."""
    line = (REPO / "Procfile").read_text().split("web:", 1)[1].splitlines()[0]
    bind = "0.0.0.0:${PORT:-8000}"
    assert bind in line, f"the Procfile's web command no longer binds {bind}: {line}"
    command = shlex.split(line.replace(bind, f"127.0.0.1:{port}"))
    assert command[0] == "gunicorn", command
    return [sys.executable, "-m", "gunicorn", *command[1:]]


def newsletter_serve(port: int) -> list[str]:
    """`newsletter serve`, as a user types it."""
    entry = "from newsletter.cli import main; main()"
    return [sys.executable, "-c", entry, "serve", "--host", "127.0.0.1", "--port", str(port)]


SERVERS = {"gunicorn": procfile_web, "newsletter serve": newsletter_serve}


@contextmanager
def running(server: str, log: Path) -> Iterator[int]:
    """The app under `server` (a name in SERVERS) with this test's settings (its environment);
    yields the port once the server answers. Its output goes to `log`."""
    port = free_port()
    # This working tree's code, not a copy installed into the environment.
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            SERVERS[server](port), env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{server} stopped:\n{log.read_text()}"
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up, or still booting
                assert time.monotonic() < deadline, f"{server} never answered:\n{log.read_text()}"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
