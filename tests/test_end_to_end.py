"""The whole daily job through its front doors: a real SMTP server, a local arXiv, the web app."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.models import SubscriberStatus
from newsletter.sources.arxiv_query import build_query
from newsletter.web import create_app
from tests.arxiv_server import ArxivServer, Reply, shared_fixture
from tests.atom import Entry, feed
from tests.helpers import set_env
from tests.smtp_server import LocalSMTPServer

ABS_ID = re.compile(r"arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5})")

PAPERS = {
    "Alpha": [
        Entry("2611.00001", "Alpha one"),
        Entry("2611.00002", "Alpha two"),
        Entry("2611.00009", "Shared by alpha and beta"),
    ],
    "Beta": [
        Entry("2611.00003", "Beta one", published="2026-11-26T18:00:00Z"),
        Entry("2611.00009", "Shared by alpha and beta"),
    ],
    "Gamma": [
        Entry(
            "2611.00004",
            '<script>alert("x")</script> Gamma & friends',
            comment="Code: https://github.com/example/gamma.",
            authors=["Zoë Ångström", "李华", "Bo Second", "Cy Third"],
        )
    ],
}


@pytest.fixture
def arxiv():
    with ArxivServer() as server:
        for name, entries in PAPERS.items():
            server.route(
                Reply(body=feed(entries)), search_query=build_query((name.lower(),), (), (), None)
            )
        yield server


@pytest.fixture
def smtp():
    with LocalSMTPServer() as server:
        yield server


@pytest.fixture
def service(cli, settings, arxiv, smtp, monkeypatch):
    settings = set_env(
        monkeypatch,
        arxiv_api_url=arxiv.url,
        smtp_url=smtp.url,
        base_url="https://digest.example.org",
    )
    for name in PAPERS:
        cli("topics", "add", name, "--keyword", name.lower())
    cli("subscribers", "add", "ada@example.org", "-t", "Alpha", "-t", "Beta")
    cli("subscribers", "add", "bo@example.org", "-t", "Beta")
    cli("subscribers", "add", "cy@example.org", "-t", "Gamma", "--lang", "de")
    return settings


def ids_in(message) -> set[str]:
    return set(ABS_ID.findall(message.get_body(("plain",)).get_content()))


def test_daily_job_delivers_each_subscriber_their_papers_once(cli, service, arxiv, smtp):
    result = cli("run")
    assert "3 sent, 0 failed" in result.output
    by_recipient = {m["To"]: m for m in smtp.messages}
    assert set(by_recipient) == {"ada@example.org", "bo@example.org", "cy@example.org"}
    assert ids_in(by_recipient["ada@example.org"]) == {
        "2611.00001",
        "2611.00002",
        "2611.00003",
        "2611.00009",
    }
    assert ids_in(by_recipient["bo@example.org"]) == {"2611.00003", "2611.00009"}
    assert ids_in(by_recipient["cy@example.org"]) == {"2611.00004"}
    ada_text = by_recipient["ada@example.org"].get_body(("plain",)).get_content()
    assert ada_text.count("Shared by alpha and beta") == 1

    cy = by_recipient["cy@example.org"]
    html = cy.get_body(("html",)).get_content()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "https://github.com/example/gamma" in html
    assert "Zoë Ångström, 李华, Bo Second et al." in html


def test_messages_carry_the_headers_mail_clients_need(cli, service, smtp):
    cli("run")
    message = next(m for m in smtp.messages if m["To"] == "bo@example.org")
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert message["From"] == "arXiv Digest <digest@localhost>"
    assert re.fullmatch(r"arXiv digest \d{4}-\d{2}-\d{2}: 2 new papers in Beta", message["Subject"])
    assert message["Date"] and message["List-Id"] == "arXiv Digest <digest.localhost>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_link, mailto = [v.strip(" <>") for v in message["List-Unsubscribe"].split(",")]
    assert https_link.startswith("https://digest.example.org/unsubscribe/")
    assert mailto.startswith("mailto:digest@localhost")
    # The footer's visible link is the same signed link.
    assert f'href="{https_link}"' in message.get_body(("html",)).get_content()
    assert https_link in message.get_body(("plain",)).get_content()
    with session_scope(service) as session:
        (delivery,) = [
            d
            for d in store.deliveries_of(session, store.list_digests(session)[0].id)
            if d.message_id == message["Message-ID"]
        ]
        assert delivery.status.value == "sent" and "250" in delivery.detail


def test_unsubscribe_link_works_and_a_second_run_sends_nothing(cli, service, arxiv, smtp):
    cli("run")
    requests_first_run = len(arxiv.requests)
    message = next(m for m in smtp.messages if m["To"] == "bo@example.org")
    link = message["List-Unsubscribe"].split(",")[0].strip(" <>")
    client = create_app(service).test_client()
    path = urlsplit(link).path

    page = client.get(path)
    assert page.status_code == 200 and b"<form" in page.data
    with session_scope(service) as session:
        assert store.get_subscriber(session, "bo@example.org").status == SubscriberStatus.active

    one_click = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    with session_scope(service) as session:
        bo = store.get_subscriber(session, "bo@example.org")
        assert bo.status == SubscriberStatus.unsubscribed
        assert [(e.kind, e.source) for e in store.events_of(session, bo)][-1] == (
            "unsubscribed",
            "one-click",
        )

    smtp.clear()
    again = cli("run")
    assert ": 0 sent, 0 failed, 0 to retry later, 3 sent before" in again.output
    assert smtp.messages == []
    # Paging stopped at known papers: one request per topic.
    assert len(arxiv.requests) - requests_first_run == len(PAPERS)


def test_arxiv_failure_for_one_topic_loses_nothing_else(cli, service, arxiv, smtp):
    rate_limited = Reply.text("Rate exceeded.", status=200)
    arxiv.route_first(rate_limited, search_query=build_query(("gamma",), (), (), None))
    result = cli("run", ok=False)
    assert result.exit_code == 1
    assert "topic 'Gamma'" in result.output and "Rate exceeded" in result.output
    assert {m["To"] for m in smtp.messages} == {"ada@example.org", "bo@example.org"}


def test_real_arxiv_responses_end_to_end(cli, settings, smtp, monkeypatch):
    page = shared_fixture("current/cs-ai-lg-cl_2026-05-12_25.xml")
    with ArxivServer(default=Reply.file(page)) as server:
        set_env(monkeypatch, arxiv_api_url=server.url, smtp_url=smtp.url)
        cli("topics", "add", "AI", "--query", "cat:cs.AI OR cat:cs.LG OR cat:cs.CL")
        cli("subscribers", "add", "ada@example.org", "-t", "AI")
        cli("run")
    (message,) = smtp.messages
    text = message.get_body(("plain",)).get_content()
    assert "25 new papers" in message["Subject"]
    assert len(ids_in(message)) == 10  # capped per topic
    assert "15 more" in text
