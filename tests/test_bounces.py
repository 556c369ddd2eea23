"""Bounce reports (RFC 3464): who is marked bounced, who is only counted, who is left alone."""

from __future__ import annotations

import json
import mailbox
import uuid
from pathlib import Path

from newsletter.bounces import Bounce, bounce_from_reply, bounces_in, classify

DSN = """From: MAILER-DAEMON@mx.example.net
To: digest@localhost
Message-ID: <{message_id}@mx.example.net>
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.example.net. I'm sorry to have to inform you...

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
Arrival-Date: Fri, 27 Nov 2026 06:00:01 +0000

{recipients}
--B
Content-Type: text/rfc822-headers

From: arXiv Digest <digest@localhost>
Subject: arXiv digest 2026-11-27: 3 new papers in SLAM

--B--
"""

RECIPIENT = """Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

"""


def dsn(*recipients: tuple[str, str, str, str]) -> str:
    """A bounce report, with a Message-ID of its own as every report has."""
    blocks = "".join(
        RECIPIENT.format(address=a, action=act, status=st, diagnostic=diag)
        for a, act, st, diag in recipients
    )
    return DSN.format(recipients=blocks, message_id=uuid.uuid4().hex)


def write_mbox(path: Path, *messages: str) -> Path:
    box = mailbox.mbox(path)
    for text in messages:
        box.add(text.encode())
    box.flush()
    box.close()
    return path


def status_of(cli, address: str) -> str:
    rows = json.loads(cli("subscribers", "list", "--json").output)
    return next(r["status"] for r in rows if r["email"] == address)


def test_dsn_fields_are_read_per_recipient():
    import email
    from email import policy

    message = email.message_from_string(
        dsn(
            ("ghost@example.net", "failed", "5.1.1", "550 5.1.1 <ghost@example.net>: User unknown"),
            ("full@example.net", "delayed", "4.2.2", "452 4.2.2 Mailbox full"),
        ),
        policy=policy.compat32,
    )
    ghost, full = bounces_in(message)
    assert (ghost.recipient, ghost.status, ghost.is_unknown_user) == (
        "ghost@example.net",
        "5.1.1",
        True,
    )
    assert "User unknown" in ghost.diagnostic
    assert (full.action, full.is_hard) == ("delayed", False)


def test_what_a_bounce_does():
    unknown = Bounce("a@example.org", "failed", "5.1.1")
    policy_block = Bounce("a@example.org", "failed", "5.7.1")
    delayed = Bounce("a@example.org", "delayed", "4.4.1")
    assert classify(unknown, 0) == "bounced"
    assert [classify(policy_block, n) for n in range(3)] == ["counted", "counted", "bounced"]
    assert classify(delayed, 5) == "ignored"
    reply = bounce_from_reply("a@example.org", 550, "5.1.1 <a@example.org>: no such user")
    assert reply.status == "5.1.1" and reply.is_unknown_user


def test_import_marks_unknown_users_at_once_and_others_on_the_third(cli, tmp_path, example_topics):
    for address in ("ghost@example.net", "blocked@example.net", "fine@example.net"):
        cli("subscribers", "add", address, "--topic", "SLAM")
    blocked = ("blocked@example.net", "failed", "5.7.1", "550 5.7.1 Message rejected as spam")
    box = write_mbox(
        tmp_path / "bounces.mbox",
        dsn(("ghost@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")),
        dsn(blocked),
        dsn(("fine@example.net", "delayed", "4.2.2", "452 4.2.2 Mailbox full")),
        dsn(blocked),
        "From: friend@example.net\nTo: digest@localhost\nSubject: Out of office\n\nBack Monday.\n",
        dsn(("stranger@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")),
    )
    first = cli("bounces", "import", str(box)).output
    assert "1 bounced, 2 counted" in first and "1 for addresses not on the list" in first
    # Read again (cron reading the same mailbox): every report was acted on already.
    again = cli("bounces", "import", str(box)).output
    assert "0 report(s)" in again and "5 read before" in again
    assert status_of(cli, "blocked@example.net") == "active"
    assert status_of(cli, "ghost@example.net") == "bounced"
    assert status_of(cli, "blocked@example.net") == "active"  # two hard failures so far
    assert status_of(cli, "fine@example.net") == "active"

    third = tmp_path / "third.eml"
    third.write_text(dsn(blocked))
    cli("bounces", "import", str(third))
    assert status_of(cli, "blocked@example.net") == "bounced"
    history = cli("subscribers", "show", "blocked@example.net").output
    assert "via bounce" in history and "5.7.1" in history


def test_bounced_subscribers_get_no_digest(cli, settings, example_topics, tmp_path):
    from newsletter import jobs
    from tests.test_digest import outbox, paper, store_papers

    cli("subscribers", "add", "ghost@example.net", "--topic", "SLAM")
    cli("subscribers", "add", "ada@example.org", "--topic", "SLAM")
    report = tmp_path / "dsn.eml"
    report.write_text(dsn(("ghost@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")))
    cli("bounces", "import", str(report))
    store_papers(settings, "SLAM", paper(1))
    jobs.send(settings)
    assert set(outbox(settings)) == {"ada@example.org"}


def test_a_file_that_is_not_mail_is_a_clear_error(cli, tmp_path):
    missing = cli("bounces", "import", str(tmp_path / "nope.mbox"), ok=False)
    assert missing.exit_code == 1 and "nope.mbox: cannot read it" in missing.output


def test_a_report_that_cannot_be_read_holds_up_no_other(cli, tmp_path, example_topics):
    for address in ("ghost@example.net", "full@example.net"):
        cli("subscribers", "add", address, "--topic", "SLAM")
    eight_bit = dsn(("full@example.net", "failed", "5.2.2", "552 Postfach voll")).replace(
        "Postfach voll", "Postfach voll \\u00fc"
    )
    box = write_mbox(
        tmp_path / "bounces.mbox",
        eight_bit.encode("utf-8").decode("latin-1"),  # 8-bit bytes in a header, unannounced
        dsn(("ghost@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")),
    )
    first = cli("bounces", "import", str(box)).output
    assert status_of(cli, "ghost@example.net") == "bounced"
    assert "1 bounced" in first
    again = cli("bounces", "import", str(box)).output
    assert "2 read before" in again and "unreadable" not in again


def test_a_message_the_parsers_choke_on_is_reported_once_and_skipped(
    cli, tmp_path, example_topics, monkeypatch
):
    from newsletter import inbox

    cli("subscribers", "add", "ghost@example.net", "--topic", "SLAM")
    real = inbox.bounces_in

    def choking(message, source=""):
        if "choke" in str(message.get("Subject", "")):
            raise ValueError("no such thing as a delivery-status part like this")
        return real(message, source)

    monkeypatch.setattr(inbox, "bounces_in", choking)
    box = write_mbox(
        tmp_path / "bounces.mbox",
        dsn(("ghost@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")).replace(
            "Subject: Undelivered", "Subject: choke Undelivered"
        ),
        dsn(("ghost@example.net", "failed", "5.1.1", "550 5.1.1 User unknown")),
    )
    first = cli("bounces", "import", str(box)).output
    assert "unreadable  bounces.mbox message 1  (ValueError: no such thing" in first
    assert "1 bounced" in first and "1 unreadable" in first
    assert status_of(cli, "ghost@example.net") == "bounced"
    again = cli("bounces", "import", str(box)).output
    assert "2 read before." in again and "unreadable" not in again
