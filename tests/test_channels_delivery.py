"""Chat channels get their digest through the same exactly-once delivery rows as email, from
`newsletter run`/`send` and from the worker's task, each platform answered by a local server
speaking its protocol: split posts all arrive once, 429s are waited as asked, 5xx retried,
a failing channel stops nobody else, and a rerun posts nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.delivery.chat import Channel, ChatMessage, ChatSender, transaction_id
from newsletter.models import ChatPlatform, SubscriberStatus, utcnow
from tests.chat_servers import FEISHU_SECRET, MATRIX_ROOM, MATRIX_TOKEN, ChatServer, Reply
from tests.helpers import load_tasks, outbox, outbox_texts, paper, set_env, statuses, store_papers
from tests.translation_servers import TranslatorServer

DAY = date(2026, 11, 27)
PLATFORMS = [platform.value for platform in ChatPlatform]
ARXIV_ID = re.compile(r"2611\.\d{5}")


@pytest.fixture
def servers() -> Iterator[dict[str, ChatServer]]:
    started = {p: ChatServer(p, secret=FEISHU_SECRET if p == "feishu" else None) for p in PLATFORMS}
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


def add_channel(cli, server: ChatServer, name: str, *topics: str, lang: str = "en") -> None:
    args = ["channels", "add", "--platform", server.platform, "--url", server.url]
    args += ["--name", name, "--lang", lang]
    if server.platform == "matrix":
        args += ["--room", MATRIX_ROOM, "--token", MATRIX_TOKEN]
    if server.secret:
        args += ["--secret", server.secret]
    for topic in topics:
        args += ["--topic", topic]
    cli(*args)


def ids_posted(server: ChatServer) -> list[str]:
    """The arXiv ids of each accepted post, each post's once: a paper twice means posted twice."""
    return [i for post in server.accepted for i in sorted(set(ARXIV_ID.findall(json.dumps(post))))]


def fast_retries(monkeypatch, **more: str):
    return set_env(monkeypatch, channel_backoff="0.05", smtp_retry_backoff="0.05", **more)


def lab_on(cli, server: ChatServer, monkeypatch, **more: str) -> ChatServer:
    """A channel `#lab` of SLAM on this server, retried fast (and with these settings)."""
    fast_retries(monkeypatch, **more)
    add_channel(cli, server, "#lab", "SLAM")
    return server


# --------------------------------------------------------- a real daily run, people and channels


def test_a_daily_run_mails_people_and_posts_to_channels_once(cli, arxiv, settings, servers):
    for platform, server in servers.items():
        add_channel(cli, server, f"#{platform}", "Alpha", "Beta")
    result = cli("run")
    assert "6 sent, 0 failed" in result.output
    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}  # channels: no mail
    for platform, server in servers.items():
        assert server.refused == [], platform
        assert sorted(ids_posted(server)) == ["2611.00001", "2611.00002", "2611.00009"], platform
        text = json.dumps(server.accepted, ensure_ascii=False)
        assert "Alpha one" in text and "Beta one" in text and "Shared paper" in text
    with session_scope(settings) as session:
        digest = store.latest_ready_daily(session)
        rows = store.deliveries_of(session, digest.id)
        assert {row.status.value for row in rows} == {"sent"} and len(rows) == 6
        details = [row.detail for row in rows if "channel" in row.detail]
        assert len(details) == 4 and all("posted 1 of 1" in detail for detail in details)

    posts_before = {platform: len(server.requests) for platform, server in servers.items()}
    again = cli("run")
    assert "0 sent" in again.output or "sent" not in again.output
    assert {p: len(s.requests) for p, s in servers.items()} == posts_before
    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}


def test_channels_get_their_own_topics_in_their_language(
    cli, arxiv, settings, servers, monkeypatch
):
    add_channel(cli, servers["slack"], "#beta", "Beta", lang="zh")
    add_channel(cli, servers["discord"], "#alpha", "Alpha")
    with TranslatorServer("google") as translator:
        set_env(monkeypatch, translator="google", translator_url=translator.url,
                translator_key="test-key", translator_backoff="0.01")  # fmt: skip
        cli("run")
    assert sorted(ids_posted(servers["slack"])) == ["2611.00002", "2611.00009"]
    assert sorted(ids_posted(servers["discord"])) == ["2611.00001", "2611.00009"]
    # The Chinese channel has the abstracts in Chinese (the local translator marks them).
    assert "[zh-CN]" in json.dumps(servers["slack"].accepted, ensure_ascii=False)
    assert "[zh-CN]" not in json.dumps(servers["discord"].accepted, ensure_ascii=False)


# ---------------------------------------------------------------- splitting, limits, progress


@pytest.fixture
def many_papers(cli, two_subscribers, monkeypatch):
    """SLAM with 45 long papers, all in one digest; Ada and Bo read it by mail."""
    settings = set_env(monkeypatch, digest_max_per_topic="100")
    long = [paper(n) for n in range(3, 46)]
    long = [p.__class__(**{**p.__dict__, "abstract": "Words about SLAM. " * 60}) for p in long]
    store_papers(settings, "SLAM", *long)
    return settings


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_big_digest_arrives_in_several_posts_each_paper_once(cli, many_papers, servers, platform):
    server = servers[platform]
    add_channel(cli, server, "#lab", "SLAM")
    result = cli("send", "--date", DAY.isoformat())
    assert "3 sent, 0 failed" in result.output
    assert server.refused == []  # every post within the platform's limits
    assert len(server.accepted) > 1
    posted = ids_posted(server)
    assert sorted(posted) == sorted(f"2611.{n:05d}" for n in range(1, 46))
    status = statuses(many_papers)
    assert status["#lab"][0] == "sent"
    assert f"posted {len(server.accepted)} of {len(server.accepted)}" in status["#lab"][1]


@pytest.mark.parametrize("platform", ["slack", "discord", "feishu"])
def test_a_retry_goes_on_from_the_first_part_not_accepted(
    cli, many_papers, servers, monkeypatch, platform
):
    fast_retries(monkeypatch, channel_tries="2")
    server = servers[platform]
    add_channel(cli, server, "#lab", "SLAM")
    # The first part is accepted, then the platform fails twice (both tries of the second).
    server.script = []
    original = server.handle

    def second_part_fails_twice(request, calls=[0]):  # noqa: B006 (a counter)
        calls[0] += 1
        if calls[0] in (2, 3):
            return Reply(503, b"upstream down")
        return original(request)

    server.handle = second_part_fails_twice
    first = cli("send", "--date", DAY.isoformat(), "--no-wait")
    assert "2 sent, 0 failed, 1 to retry later" in first.output
    status = statuses(many_papers)["#lab"]
    assert status[0] == "pending" and "HTTP 503" in status[1]
    assert f"{platform} channel '#lab'" in status[1] and "(posted 1 of " in status[1]
    assert server.url not in status[1] and "SECRET" not in status[1]
    time.sleep(0.2)
    second = cli("send", "--date", DAY.isoformat())
    assert "1 sent" in second.output
    assert sorted(ids_posted(server)) == sorted(f"2611.{n:05d}" for n in range(1, 46))
    assert statuses(many_papers)["#lab"][0] == "sent"


# ----------------------------------------------------------------------- retries, rate limits

RATE_LIMITED = {
    "slack": Reply(429, b"rate_limited", {"Retry-After": "1"}),
    "discord": Reply(429, {"message": "You are being rate limited.", "retry_after": 0.6,
                           "global": False}),
    "matrix": Reply(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests",
                          "retry_after_ms": 600}),
    "feishu": Reply(200, {"code": 11232, "msg": "frequency limited"}, {"Retry-After": "1"}),
}  # fmt: skip
"""Each platform's "too many requests", with the wait it asks for."""
ASKED = {"slack": 1.0, "discord": 0.6, "matrix": 0.6, "feishu": 1.0}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_429_is_waited_as_the_platform_asks_then_posted_once(
    cli, two_subscribers, servers, monkeypatch, platform
):
    server = lab_on(cli, servers[platform], monkeypatch)  # a backoff far under the wait asked
    server.then(RATE_LIMITED[platform])
    result = cli("send", "--date", DAY.isoformat())
    assert "3 sent, 0 failed" in result.output
    first, second = server.requests
    assert second.at - first.at >= ASKED[platform] * 0.95
    assert len(server.accepted) == 1 and sorted(ids_posted(server)) == ["2611.00001", "2611.00002"]
    if platform == "matrix":  # the same transaction: one event, whatever happened between
        assert first.path == second.path


def test_a_wait_longer_than_allowed_defers_the_row_to_then(
    cli, two_subscribers, servers, monkeypatch
):
    set_env(monkeypatch, channel_max_wait="5")
    add_channel(cli, servers["slack"], "#lab", "SLAM")
    servers["slack"].then(Reply(429, b"rate_limited", {"Retry-After": "120"}))
    before = utcnow()
    result = cli("send", "--date", DAY.isoformat(), "--no-wait")
    assert "2 sent, 0 failed, 1 to retry later" in result.output
    assert len(servers["slack"].requests) == 1  # not waited here
    with session_scope(two_subscribers) as session:
        digest = store.digest_on(session, DAY)
        (row,) = [r for r in store.deliveries_of(session, digest.id) if r.status == "pending"]
        assert row.not_before >= before + timedelta(seconds=119)
        assert "HTTP 429" in row.detail and "'#lab'" in row.detail


@pytest.mark.parametrize("platform", PLATFORMS)
def test_5xx_and_silence_are_retried_a_bounded_number_of_times(
    cli, two_subscribers, servers, monkeypatch, platform
):
    server = lab_on(cli, servers[platform], monkeypatch, channel_tries="3")
    server.then(Reply(500, b"oops"), Reply(502, b"bad gateway"))
    assert "3 sent, 0 failed" in cli("send", "--date", DAY.isoformat()).output
    assert len(server.requests) == 3 and len(server.accepted) == 1

    # Always failing: the row is deferred after its tries, then failed after the delivery's.
    server.accepted.clear()
    server.requests.clear()
    fast_retries(monkeypatch, channel_tries="2", smtp_max_attempts="2")
    cli("channels", "remove", "#lab", "--purge")
    add_channel(cli, server, "#again", "SLAM")
    server.then(*[Reply(503, b"down")] * 4)
    result = cli("send", "--date", DAY.isoformat(), ok=False)
    assert "1 failed" in result.output and f"{platform} channel '#again': HTTP 503" in result.output
    assert len(server.requests) == 4 and server.accepted == []
    assert server.url not in result.output


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_platform_that_hangs_is_given_up_on_and_tried_again(
    cli, two_subscribers, servers, monkeypatch, platform
):
    server = lab_on(cli, servers[platform], monkeypatch, channel_timeout="0.3")
    server.then(Reply(503, b"", delay=2))  # no answer within the timeout
    started = time.monotonic()
    assert "3 sent, 0 failed" in cli("send", "--date", DAY.isoformat()).output
    assert time.monotonic() - started < 2
    assert len(server.requests) == 2 and len(server.accepted) == 1


def test_a_matrix_post_whose_answer_was_lost_is_one_event(
    cli, two_subscribers, servers, monkeypatch
):
    """The homeserver made the event, its answer came too late: the retry, the same
    transaction, is recognised; the room shows the digest once."""
    server = lab_on(cli, servers["matrix"], monkeypatch, channel_timeout="0.3")
    server.slow = [2.0]
    assert "3 sent, 0 failed" in cli("send", "--date", DAY.isoformat()).output
    first, second = server.requests
    assert first.path == second.path and len(server.accepted) == 1


def test_a_failing_channel_stops_neither_email_nor_other_channels(
    cli, two_subscribers, servers, monkeypatch
):
    fast_retries(monkeypatch)
    add_channel(cli, servers["discord"], "#gone", "SLAM")
    add_channel(cli, servers["matrix"], "#matrix", "SLAM")
    servers["discord"].then(Reply(404, {"message": "Unknown Webhook", "code": 10015}))
    result = cli("send", "--date", DAY.isoformat(), ok=False)
    assert "3 sent, 1 failed" in result.output
    assert "discord channel '#gone': HTTP 404" in result.output
    assert set(outbox(two_subscribers)) == {"ada@example.org", "bo@example.org"}
    assert len(servers["matrix"].accepted) == 1
    assert len(servers["discord"].requests) == 1  # a 404 is not retried
    with session_scope(two_subscribers) as session:
        gone = store.find_channel(session, "#gone")
        assert gone.status == SubscriberStatus.active and gone.bounce_count == 0  # no bounce


def test_matrix_parts_have_deterministic_transaction_ids(servers, settings):
    """A part sent again (a lost answer, a worker that died) is the same event."""
    server = servers["matrix"]
    channel = Channel(ChatPlatform.matrix, server.url, "#lab", MATRIX_ROOM, MATRIX_TOKEN)
    posts = ({"msgtype": "m.notice", "body": "one"}, {"msgtype": "m.notice", "body": "two"})
    message = ChatMessage(7, channel, "<digest.1.2@example.org>", posts)
    sender = ChatSender(settings)
    assert [r.ok for r in sender.send([message, message])] == [True, True]
    assert [post["body"] for post in server.accepted] == ["one", "two"]
    paths = [request.path.rsplit("/", 1)[1] for request in server.requests]
    assert paths == [transaction_id(message.message_id, part) for part in (0, 1)] * 2
    assert len(set(paths)) == 2


def test_feishu_requests_are_signed_and_a_wrong_secret_fails_clearly(servers, settings):
    server = servers["feishu"]
    signed = Channel(ChatPlatform.feishu, server.url, "#lab", None, FEISHU_SECRET)
    assert (
        ChatSender(settings).post(signed, {"msg_type": "interactive", "card": {"elements": []}}).ok
    )
    wrong = Channel(ChatPlatform.feishu, server.url, "#lab", None, "WRONGSECRET")
    answer = ChatSender(settings).post(wrong, {"msg_type": "interactive", "card": {"elements": []}})
    assert not answer.ok and answer.permanent and "code 19021" in answer.reason
    assert "WRONGSECRET" not in answer.reason


def test_the_worker_s_daily_task_posts_channels_too(cli, arxiv, settings, servers):
    tasks = load_tasks()
    add_channel(cli, servers["matrix"], "#lab", "Beta")
    tasks.huey.immediate = True
    try:
        tasks.daily_job().get()
        tasks.daily_job().get()  # safe to run twice: nothing is posted twice
    finally:
        tasks.huey.immediate = False
    assert set(outbox_texts()) == {"ada@example.org", "bo@example.org"}
    assert sorted(ids_posted(servers["matrix"])) == ["2611.00002", "2611.00009"]
