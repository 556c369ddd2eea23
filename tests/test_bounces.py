"""Bounce reports (RFC 3464): who is marked bounced, who is only counted, who is left alone."""

from __future__ import annotations

from datetime import timedelta

from newsletter.delivery.bounces import Bounce, bounce_from_reply, classify
from newsletter.inbound.dsn import bounces_in
from tests.helpers import (
    bounce_of,
    clear_outbox,
    digests_sent,
    dsn,
    outbox,
    paper,
    status_of,
    store_papers,
    write_mbox,
)


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


def test_import_marks_unknown_users_at_once_and_others_on_the_third(
    cli, settings, tmp_path, example_topics
):
    sent = digests_sent(
        cli, settings, "ghost@example.net", "blocked@example.net", "fine@example.net"
    )
    blocked = ("blocked@example.net", "5.7.1", "550 5.7.1 Message rejected as spam")
    box = write_mbox(
        tmp_path / "bounces.mbox",
        bounce_of(sent, "ghost@example.net", "5.1.1", "550 5.1.1 User unknown"),
        bounce_of(sent, *blocked),
        bounce_of(sent, "fine@example.net", "4.2.2", "452 4.2.2 Mailbox full"),
        bounce_of(sent, *blocked),
        "From: friend@example.net\nTo: digest@localhost\nSubject: Out of office\n\nBack Monday.\n",
    )
    first = cli("bounces", "import", str(box)).output
    assert "4 report(s): 1 bounced, 2 counted, 1 temporary" in first
    assert status_of(cli, "ghost@example.net") == "bounced"
    assert status_of(cli, "blocked@example.net") == "active"  # two hard failures so far
    assert status_of(cli, "fine@example.net") == "active"
    # Read again (cron reading the same mailbox): every report was acted on already.
    again = cli("bounces", "import", str(box)).output
    assert "0 report(s)" in again and "4 read before" in again
    assert status_of(cli, "blocked@example.net") == "active"

    third = tmp_path / "third.eml"
    third.write_text(bounce_of(sent, *blocked))
    cli("bounces", "import", str(third))
    assert status_of(cli, "blocked@example.net") == "bounced"
    history = cli("subscribers", "show", "blocked@example.net").output
    assert "via bounce" in history and "5.7.1" in history


def test_a_forged_report_bounces_nobody(cli, settings, tmp_path, example_topics):
    """Anyone can mail a report naming any address: only one about a digest we sent to that
    very address counts."""
    sent = digests_sent(cli, settings, "ada@example.org", "bo@example.org")
    unknown = ("failed", "5.1.1", "550 5.1.1 User unknown")
    box = write_mbox(
        tmp_path / "forged.mbox",
        dsn(("ada@example.org", *unknown)),  # no returned message at all
        dsn(("ada@example.org", *unknown), original="<made-up@example.org>"),
        dsn(("ada@example.org", *unknown), original=sent["bo@example.org"]),  # bo's, not ada's
    )
    result = cli("bounces", "import", str(box)).output
    assert "3 report(s): 0 bounced" in result and "3 about no digest we sent" in result
    assert result.count("not acted on  ada@example.org  (names no digest we sent") == 3
    assert status_of(cli, "ada@example.org") == "active"
    assert status_of(cli, "bo@example.org") == "active"


def test_bounced_subscribers_get_no_digest(cli, settings, example_topics, tmp_path):
    from newsletter.daily import send

    sent = digests_sent(cli, settings, "ghost@example.net", "ada@example.org")
    report = tmp_path / "dsn.eml"
    report.write_text(bounce_of(sent, "ghost@example.net", "5.1.1", "550 5.1.1 User unknown"))
    cli("bounces", "import", str(report))
    clear_outbox(settings)
    store_papers(settings, "SLAM", paper(2))
    send.send(settings, settings.today() + timedelta(days=1))
    assert set(outbox(settings)) == {"ada@example.org"}


def test_a_file_that_is_not_mail_is_a_clear_error(cli, tmp_path):
    missing = cli("bounces", "import", str(tmp_path / "nope.mbox"), ok=False)
    assert missing.exit_code == 1 and "nope.mbox: cannot read it" in missing.output


def test_a_report_that_cannot_be_read_holds_up_no_other(cli, settings, tmp_path, example_topics):
    sent = digests_sent(cli, settings, "ghost@example.net", "full@example.net")
    eight_bit = bounce_of(sent, "full@example.net", "5.2.2", "552 Postfach voll \u00fc")
    box = write_mbox(
        tmp_path / "bounces.mbox",
        eight_bit.encode("utf-8").decode("latin-1"),  # 8-bit bytes in a header, unannounced
        bounce_of(sent, "ghost@example.net", "5.1.1", "550 5.1.1 User unknown"),
    )
    first = cli("bounces", "import", str(box)).output
    assert status_of(cli, "ghost@example.net") == "bounced"
    assert "1 bounced, 1 counted" in first
    again = cli("bounces", "import", str(box)).output
    assert "2 read before" in again and "unreadable" not in again
