"""Sending through a real SMTP server that misbehaves: what fails is said, nothing good is lost."""

from __future__ import annotations

import time
from datetime import date

import pytest

from newsletter import store
from newsletter.daily import send as daily_send
from newsletter.db import session_scope
from newsletter.delivery.outbox import OutboxTransport
from tests.arxiv_server import refused_url
from tests.helpers import set_env, statuses
from tests.smtp_server import LocalSMTPServer

DAY = date(2026, 11, 27)


def test_a_refused_recipient_fails_alone_with_the_servers_reply(cli, two_subscribers, monkeypatch):
    with LocalSMTPServer(reject_recipients=["bo@example.org"]) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        result = cli("send", "--date", DAY.isoformat(), ok=False)
        assert result.exit_code == 1
        assert "1 sent, 1 failed" in result.output
        assert "bo@example.org: 550" in result.output
        assert [m["To"] for m in smtp.messages] == ["ada@example.org"]
    status = statuses(two_subscribers)
    assert status["ada@example.org"][0] == "sent"
    assert status["bo@example.org"][0] == "failed" and "550" in status["bo@example.org"][1]


def test_a_soft_reject_is_delivered_once_after_a_retry(cli, two_subscribers, monkeypatch):
    with LocalSMTPServer(tempfail_data=1) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url, smtp_retry_backoff="0.05")
        result = cli("send", "--date", DAY.isoformat())
        assert "2 sent, 0 failed, 0 to retry later" in result.output
        assert "1 temporary failure(s)" in result.output
        assert sorted(m["To"] for m in smtp.messages) == ["ada@example.org", "bo@example.org"]
    attempts = attempts_of(two_subscribers)
    assert sorted(attempts.values()) == [1, 2]


def attempts_of(settings) -> dict[str, int]:
    with session_scope(settings) as session:
        digest = store.digest_on(session, DAY)
        return {
            store.subscriber_by_id(session, d.subscriber_id).email: d.attempts
            for d in store.deliveries_of(session, digest.id)
        }


def test_without_waiting_a_temporary_failure_goes_on_the_next_run(
    cli, two_subscribers, monkeypatch
):
    with LocalSMTPServer(tempfail_data=1) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url, smtp_retry_backoff="0.5")
        first = cli("send", "--date", DAY.isoformat(), "--no-wait")
        assert "1 sent, 0 failed, 1 to retry later" in first.output
        assert len(smtp.messages) == 1
        assert sorted(s for s, _ in statuses(two_subscribers).values()) == ["pending", "sent"]
        time.sleep(0.6)  # the retry's backoff
        second = cli("send", "--date", DAY.isoformat(), "--no-wait")
        assert "1 sent, 0 failed, 0 to retry later, 1 sent before" in second.output
        assert sorted(m["To"] for m in smtp.messages) == ["ada@example.org", "bo@example.org"]


def test_an_unreachable_server_is_a_clear_error_and_loses_nothing(
    cli, two_subscribers, monkeypatch
):
    port = refused_url().split(":")[2].split("/")[0]
    set_env(monkeypatch, smtp_url=f"smtp://mailer:s3cret-pw@127.0.0.1:{port}")
    result = cli("send", "--date", DAY.isoformat(), ok=False)
    assert result.exit_code == 6  # the mail server (see the README's exit statuses)
    assert f"127.0.0.1:{port}" in result.output and "s3cret-pw" not in result.output
    # Nothing was sent, so everything goes out once the server is back.
    with LocalSMTPServer() as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        assert "2 sent" in cli("send", "--date", DAY.isoformat()).output
        assert len(smtp.messages) == 2


def test_an_interrupted_send_resumes_without_resending(two_subscribers, tmp_path):
    class DiesAfterOne(OutboxTransport):
        def send(self, messages):
            for number, result in enumerate(super().send(messages)):
                if number == 1:
                    raise KeyboardInterrupt  # the process is stopped mid-batch
                yield result

    with pytest.raises(KeyboardInterrupt):
        daily_send.send(two_subscribers, DAY, transport=DiesAfterOne(tmp_path / "first"))
    assert (
        len(list((tmp_path / "first").glob("*.eml"))) == 2
    )  # the second was written, not recorded
    resumed = daily_send.send(two_subscribers, DAY, transport=OutboxTransport(tmp_path / "second"))
    assert (resumed.sent, resumed.already_sent) == (1, 1)
    (again,) = (tmp_path / "second").glob("*.eml")
    # The one possible duplicate keeps its Message-ID, so receivers recognise it.
    assert again.name in {p.name for p in (tmp_path / "first").glob("*.eml")}
