"""Unsubscribing by email: the List-Unsubscribe mailto: carries the subscriber's signed token,
and `newsletter unsubscribes import` acts on the requests mail clients send to it."""

from __future__ import annotations

import email
from email import policy
from urllib.parse import parse_qs, urlsplit

from newsletter.inbound.unsubscribes import request_in
from newsletter.tokens import UNSUBSCRIBE, read_token
from tests.helpers import (
    SLAM_READERS,
    dsn,
    mailto_of,
    request_for,
    sent_digests,
    status_of,
    write_mbox,
)


def test_the_mailto_carries_the_subscribers_own_unsubscribe_token(cli, settings, example_topics):
    messages = sent_digests(cli, settings)
    secret = settings.secret()
    public_ids = {}
    for address, message in messages.items():
        url = urlsplit(mailto_of(message))
        assert url.scheme == "mailto" and url.path == settings.sender_email
        word, token = parse_qs(url.query)["subject"][0].split(" ")
        assert word == "unsubscribe"
        public_ids[address] = read_token(secret, UNSUBSCRIBE, token)
        https_link = message["List-Unsubscribe"].split(",")[0].strip(" <>")
        assert https_link.endswith("/" + token)  # the same token as the one-click link
    assert len(set(public_ids.values())) == len(SLAM_READERS)


def test_requests_unsubscribe_by_token_never_by_sender(cli, settings, example_topics, tmp_path):
    messages = sent_digests(cli, settings)
    ada_mailto = mailto_of(messages["ada@example.org"])
    bo_mailto = mailto_of(messages["bo@example.org"])
    tampered = bo_mailto[:-3] + ("AAA" if not bo_mailto.endswith("AAA") else "BBB")
    box = write_mbox(
        tmp_path / "digest.mbox",
        request_for(ada_mailto, "Ada <ada@example.org>"),
        # Forwarded from another account: the token still says who leaves.
        request_for(ada_mailto, "ada.private@example.net").replace(
            "Subject: unsubscribe", "Subject: Fwd: unsubscribe"
        ),
        # Someone writing "unsubscribe" in Cy's name: no token, nothing happens.
        "From: cy@example.org\nTo: digest@localhost\nSubject: unsubscribe\n\nplease\n",
        request_for(tampered, "bo@example.org"),
        "From: cy@example.org\nTo: digest@localhost\nSubject: Re: arXiv digest\n\nThanks!\n",
        dsn(("bo@example.org", "failed", "5.1.1", "550 5.1.1 User unknown")),
    )

    result = cli("unsubscribes", "import", str(box))

    assert "4 request(s): 1 unsubscribed, 1 already gone, 2 not acted on;" in result.output
    assert "not acted on  cy@example.org  (no token" in result.output
    assert "not acted on  bo@example.org  (a token that does not verify" in result.output
    assert status_of(cli, "ada@example.org") == "unsubscribed"
    assert status_of(cli, "bo@example.org") == "active"  # neither the tampered token nor the DSN
    assert status_of(cli, "cy@example.org") == "active"
    history = cli("subscribers", "show", "ada@example.org").output
    assert "via mailto" in history and "from ada@example.org" in history

    again = cli("unsubscribes", "import", str(box))
    assert "0 request(s)" in again.output and "4 read before" in again.output
    assert "not acted on  cy" not in again.output  # listed once, not at every read


def test_only_unsubscribe_subjects_are_requests():
    def parsed(text: str):
        return email.message_from_string(text, policy=policy.compat32)

    token = "IkFiQyI.aBcDeF.sIgNaTuRe_-"
    wanted = {
        f"unsubscribe {token}": token,
        f"RE: Unsubscribe   {token}": token,
        "unsubscribe": "",
        f"=?utf-8?q?unsubscribe_{token.replace('_', '=5F')}?=": token,  # as a client may encode
    }
    for subject, expected in wanted.items():
        found = request_in(parsed(f"From: a@example.org\nSubject: {subject}\n\nx\n"))
        assert found is not None and found.token == expected, subject
    for subject in ("Unsubscribe me from everything please", "How do I unsubscribe?", ""):
        assert request_in(parsed(f"From: a@example.org\nSubject: {subject}\n\nx\n")) is None


def test_a_file_that_is_not_mail_is_a_clear_error(cli, tmp_path):
    missing = cli("unsubscribes", "import", str(tmp_path / "nope.mbox"), ok=False)
    assert missing.exit_code == 1 and "nope.mbox: cannot read it" in missing.output


def test_what_strangers_wrote_reaches_the_terminal_without_control_characters(
    cli, settings, example_topics, tmp_path
):
    hostile = "From: x\x1b[31m@example.org\nSubject: unsubscribe\n\nx\n"  # kept by parseaddr
    result = cli("unsubscribes", "import", str(write_mbox(tmp_path / "m.mbox", hostile)))
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "not acted on  x?" in result.output
