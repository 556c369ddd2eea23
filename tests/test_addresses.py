"""International addresses: what email-validator accepts, delivery can do, or says why not.

A domain that is not ASCII travels in IDNA (`bücher.example` → `xn--bcher-kva.example`), which
every server takes; a local part that is not ASCII needs a server offering SMTPUTF8 (RFC 6531),
and where there is none that one delivery fails with the reason and the others go out.
"""

from __future__ import annotations

import email
from datetime import date
from email import policy
from pathlib import Path

import pytest

from newsletter import store
from newsletter.db import session_scope
from newsletter.errors import InvalidInput
from newsletter.message.addresses import smtp_address
from newsletter.models import SubscriberStatus
from tests.helpers import paper, set_env, statuses, store_papers, subscribe
from tests.smtp_server import LocalSMTPServer

DAY = date(2026, 11, 27)

IDNA_DOMAIN = ("user@bücher.example", "user@xn--bcher-kva.example")
UTF8_LOCAL_PARTS = {
    "用户@例子.广告": "用户@xn--fsqu00a.xn--4rr70v",
    "ｆｕｌｌ@example.org": "ｆｕｌｌ@example.org",  # full-width: email-validator keeps it
}


def test_smtp_address_encodes_the_domain_and_keeps_the_local_part():
    assert smtp_address(IDNA_DOMAIN[0]) == IDNA_DOMAIN[1]
    for address, on_the_wire in UTF8_LOCAL_PARTS.items():
        assert smtp_address(address) == on_the_wire
    assert smtp_address("ada@example.org") == "ada@example.org"
    with pytest.raises(InvalidInput, match="IDNA"):
        smtp_address("a@\u0378bad.example")  # an unassigned code point has no IDNA form


@pytest.fixture
def international(cli, settings, example_topics):
    """Ada (ASCII), a reader at an IDNA domain and two with non-ASCII local parts, added the
    three ways a subscriber arrives: the CLI, a CSV import, and the stored form they get."""
    subscribe(cli, "ada@example.org", "SLAM")
    subscribe(cli, IDNA_DOMAIN[0], "SLAM")
    csv_file = Path("international.csv")
    rows = "".join(f"{address},,SLAM\n" for address in UTF8_LOCAL_PARTS)
    csv_file.write_text("email,name,topics\n" + rows, encoding="utf-8")
    imported = cli("subscribers", "import", str(csv_file))
    assert "0 rejected" in imported.output
    store_papers(settings, "SLAM", paper(1), paper(2))
    return settings


def test_a_server_offering_smtputf8_gets_every_address_the_cli_and_csv_accepted(
    cli, international, monkeypatch
):
    with LocalSMTPServer(smtputf8=True) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        result = cli("send", "--date", DAY.isoformat())
        received = {message.rcpt_tos[0]: message for message in smtp.messages}

    assert "4 sent, 0 failed" in result.output
    expected = {"ada@example.org", IDNA_DOMAIN[1], *UTF8_LOCAL_PARTS.values()}
    assert set(received) == expected
    for rcpt, message in received.items():
        assert str(message["To"]) == rcpt  # the header says the same, in UTF-8 (RFC 6532)
        assert message["Message-ID"] and message.get_body(("plain",)) is not None
    assert {state for state, _ in statuses(international).values()} == {"sent"}


def test_without_smtputf8_only_the_non_ascii_local_parts_fail_and_say_why(
    cli, international, monkeypatch
):
    with LocalSMTPServer() as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        result = cli("send", "--date", DAY.isoformat(), ok=False)
        assert result.exit_code == 1
        assert "2 sent, 2 failed" in result.output
        assert sorted(message.rcpt_tos[0] for message in smtp.messages) == sorted(
            ["ada@example.org", IDNA_DOMAIN[1]]
        )
        status = cli("status").output
        for address in UTF8_LOCAL_PARTS:
            assert address in status
        assert status.count("SMTPUTF8") >= 2

        # A rerun stops at nothing and sends nothing twice.
        again = cli("send", "--date", DAY.isoformat())
        assert "0 sent" in again.output and len(smtp.messages) == 2

    found = statuses(international)
    for address in UTF8_LOCAL_PARTS:
        state, detail = found[address]
        assert state == "failed" and "SMTPUTF8" in detail
    # Our relay's limit is no bounce: the readers stay subscribed.
    with session_scope(international) as session:
        for address in UTF8_LOCAL_PARTS:
            subscriber = store.find_subscriber(session, address)
            assert subscriber.status == SubscriberStatus.active
            assert subscriber.bounce_count == 0


def test_the_outbox_keeps_international_addresses_readable(cli, international):
    cli("send", "--date", DAY.isoformat())
    recipients = set()
    for path in Path(international.outbox_dir).glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.strict)
        recipients.add(str(message["To"]))
    assert recipients == {"ada@example.org", IDNA_DOMAIN[1], *UTF8_LOCAL_PARTS.values()}


def test_an_address_that_cannot_be_written_fails_alone(cli, international, monkeypatch):
    # What email-validator refuses can still be in the database (an older version's import,
    # a hand-made row): its message cannot be built, and that is its row's failure alone.
    broken = "ada@\u0378bad.example"
    with session_scope(international) as session:
        subscriber = store.find_subscriber(session, "ada@example.org")
        subscriber.email, subscriber.email_key = broken, broken
    with LocalSMTPServer(smtputf8=True) as smtp:
        set_env(monkeypatch, smtp_url=smtp.url)
        result = cli("send", "--date", DAY.isoformat(), ok=False)
        assert "3 sent, 1 failed" in result.output
        assert len(smtp.messages) == 3
    state, detail = statuses(international)[broken]
    assert state == "failed" and "could not be built" in detail and "IDNA" in detail


def test_a_sender_at_an_international_domain_needs_no_smtputf8(
    cli, settings, example_topics, monkeypatch
):
    subscribe(cli, "ada@example.org", "SLAM")
    store_papers(settings, "SLAM", paper(1))
    with LocalSMTPServer() as smtp:  # no SMTPUTF8, as most relays
        set_env(monkeypatch, smtp_url=smtp.url, **{"from": "Bücher <digest@bücher.example>"})
        result = cli("send", "--date", DAY.isoformat())
        (message,) = smtp.messages

    assert "1 sent, 0 failed" in result.output
    assert message.mail_from == "digest@xn--bcher-kva.example"
    # The address in IDNA: an encoded word inside it (`digest@=?utf-8?q?b=C3=BCcher?=…`) is
    # no address; the name may be one.
    (from_line,) = [line for line in message.raw.splitlines() if line.startswith(b"From:")]
    assert from_line.endswith(b" <digest@xn--bcher-kva.example>")
    assert message["From"].addresses[0].display_name == "Bücher"
    assert str(message["Message-ID"]).endswith("@xn--bcher-kva.example>")
