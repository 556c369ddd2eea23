"""Reading returned mail as hostile: one message too big, too deep, too many-parted or too
broken is listed as unreadable and the rest of the mailbox is still acted on, by both import
commands and the worker, in an mbox and in a Maildir."""

from __future__ import annotations

import email
import logging
import mailbox
import re
from email import policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from newsletter.inbound import reader
from newsletter.inbound.dsn import bounces_in
from newsletter.inbound.mailboxes import (
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    MAX_PARTS,
    UnreadableMessage,
    message_key,
    read_messages,
)
from tests.helpers import (
    HEAD,
    bounce_of,
    digests_sent,
    load_tasks,
    mailto_of,
    nested,
    request_for,
    sent_digests,
    set_env,
    status_of,
    write_mbox,
)


def many_parts(count: int) -> str:
    parts = "".join(f"--b\nContent-Type: text/plain\n\npart {n}\n" for n in range(count))
    return f'{HEAD}Subject: parts\nContent-Type: multipart/mixed; boundary="b"\n\n{parts}--b--\n'


def oversized() -> str:
    """A message 1 MB past MAX_MESSAGE_BYTES."""
    line = "x" * 75 + "\n"
    body = line * ((MAX_MESSAGE_BYTES + 2**20) // len(line))
    return f"{HEAD}Message-ID: <big@example.net>\nSubject: the whole thesis\n\n{body}"


HOSTILE = {
    "nested": (nested(1000), f"nested deeper than the limit of {MAX_DEPTH} levels"),
    "parts": (many_parts(10_000), f"more parts than the limit of {MAX_PARTS}"),
    "size": (
        oversized(),
        f"{(MAX_MESSAGE_BYTES + 2**20) / 2**20:.1f} MB,"
        f" over the limit of {MAX_MESSAGE_BYTES // 2**20} MB",
    ),
    # Base64 that does not decode, then a charset that does not exist: either could hide a
    # request whose token nobody can read.
    "base64": (
        f"{HEAD}Subject: =?utf-8?b?dW5zdWJz?= =?utf-8?b?Y?=\n\nx\n",
        "its Subject does not decode: Base64 decoding error",
    ),
    "charset": (
        f"{HEAD}Subject: =?x-no-such-charset?q?unsubscribe?=\n\nx\n",
        "its Subject does not decode: unknown encoding: x-no-such-charset",
    ),
}
UNREADABLE_BY_ANY_READ = ("nested", "parts", "size")
"""The others are unreadable only to a read for unsubscribe requests: bounce reports are told
by their structure, not their Subject."""


def write_maildir(path: Path, *messages: str) -> Path:
    box = mailbox.Maildir(path)  # as Postfix delivers with home_mailbox = Maildir/
    for text in messages:
        box.add(text.encode())
    box.close()
    return path


def write_mailbox(kind: str, folder: Path, *messages: str) -> Path:
    if kind == "mbox":
        return write_mbox(folder / "reader.mbox", *messages)
    return write_maildir(folder / "Maildir", *messages)


def unreadable_line(box: Path, reason: str, number: int | None = None) -> re.Pattern:
    """The report's line for a message not read: which message (its place in an mbox; a
    Maildir's order is its files' names) and why."""
    which = str(number) if number is not None else r"\d+"
    return re.compile(rf"^unreadable  {box.name} message {which}  \({re.escape(reason)}\)$", re.M)


def assert_listed(output: str, box: Path, kind: str, names: tuple[str, ...], first: int = 2):
    for number, name in enumerate(names, first):
        line = unreadable_line(box, HOSTILE[name][1], number if kind == "mbox" else None)
        assert len(line.findall(output)) == 1, f"{name} not listed once:\n{output[:3000]}"


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_unsubscribe_requests_around_hostile_messages_are_applied(
    cli, settings, example_topics, tmp_path, kind
):
    messages = sent_digests(cli, settings)
    box = write_mailbox(
        kind,
        tmp_path,
        request_for(mailto_of(messages["ada@example.org"]), "ada@example.org"),
        *(text for text, _reason in HOSTILE.values()),
        request_for(mailto_of(messages["bo@example.org"]), "bo@example.org"),
    )

    first = cli("unsubscribes", "import", str(box)).output

    assert status_of(cli, "ada@example.org") == "unsubscribed"
    assert status_of(cli, "bo@example.org") == "unsubscribed"
    assert status_of(cli, "cy@example.org") == "active"
    assert_listed(first, box, kind, tuple(HOSTILE))
    assert first.count("unreadable  ") == len(HOSTILE)
    assert "2 request(s): 2 unsubscribed, 0 already gone, 0 not acted on;" in first
    assert first.rstrip().endswith(f"0 read before; {len(HOSTILE)} unreadable.")

    # Read again: the requests were acted on already; the unreadable ones are still there,
    # still unread, and listed again.
    again = cli("unsubscribes", "import", str(box)).output
    assert "0 request(s): 0 unsubscribed" in again
    assert again.rstrip().endswith(f"2 read before; {len(HOSTILE)} unreadable.")
    assert_listed(again, box, kind, tuple(HOSTILE))
    history = cli("subscribers", "show", "ada@example.org").output
    assert history.count("via mailto") == 1


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_bounce_reports_around_hostile_messages_are_applied(
    cli, settings, example_topics, tmp_path, kind
):
    sent = digests_sent(cli, settings, "ghost@example.net", "gone@example.net", "ada@example.org")
    box = write_mailbox(
        kind,
        tmp_path,
        bounce_of(sent, "ghost@example.net", "5.1.1", "550 5.1.1 User unknown"),
        *(text for text, _reason in HOSTILE.values()),
        bounce_of(sent, "gone@example.net", "5.1.1", "550 5.1.1 User unknown"),
    )

    first = cli("bounces", "import", str(box)).output

    assert status_of(cli, "ghost@example.net") == "bounced"
    assert status_of(cli, "gone@example.net") == "bounced"
    assert status_of(cli, "ada@example.org") == "active"
    assert_listed(first, box, kind, UNREADABLE_BY_ANY_READ)
    assert first.count("unreadable  ") == len(UNREADABLE_BY_ANY_READ)
    assert "2 report(s): 2 bounced, 0 counted" in first
    assert first.rstrip().endswith(f"0 read before; {len(UNREADABLE_BY_ANY_READ)} unreadable.")

    again = cli("bounces", "import", str(box)).output
    assert "0 report(s): 0 bounced" in again
    assert again.rstrip().endswith(f"2 read before; {len(UNREADABLE_BY_ANY_READ)} unreadable.")
    assert_listed(again, box, kind, UNREADABLE_BY_ANY_READ)
    history = cli("subscribers", "show", "ghost@example.net").output
    assert history.count("via bounce") == 1


def test_the_inbox_lists_an_unreadable_message_at_every_read_and_logs_it_once(
    cli, settings, example_topics, tmp_path, monkeypatch, caplog
):
    messages = sent_digests(cli, settings)
    maildir = write_maildir(
        tmp_path / "Maildir",
        nested(1000),
        request_for(mailto_of(messages["ada@example.org"]), "ada@example.org"),
    )
    listed = unreadable_line(maildir, HOSTILE["nested"][1])

    first = reader.read_inbox(settings, maildir)
    assert (first.acted_on, first.unreadable, first.read_before) == (1, 1, 0)
    assert len(first.lines) == 1 and listed.fullmatch(first.lines[0])
    assert first.still_unreadable == []
    second = reader.read_inbox(settings, maildir)
    assert (second.acted_on, second.unreadable, second.read_before) == (0, 1, 1)
    assert second.lines == [] and second.still_unreadable == first.lines

    # The worker, reading every few minutes, logs what is new at a read: a new unreadable
    # message once, not at every read.
    write_maildir(maildir, many_parts(10_000))
    tasks = load_tasks()
    set_env(monkeypatch, inbox=str(maildir))
    with caplog.at_level(logging.INFO, logger="newsletter.worker.tasks"):
        assert tasks.read_inbox.call_local() == {"acted_on": 0, "read_before": 1}
        assert tasks.read_inbox.call_local() == {"acted_on": 0, "read_before": 1}
    logged = [r.getMessage() for r in caplog.records if "unreadable  " in r.getMessage()]
    assert len(logged) == 1 and f"more parts than the limit of {MAX_PARTS}" in logged[0]
    assert status_of(cli, "ada@example.org") == "unsubscribed"


def test_a_message_unreadable_at_one_read_is_acted_on_once_it_can_be_read(
    cli, settings, example_topics, tmp_path, monkeypatch
):
    """Being listed unreadable is remembered apart from being acted on: a request read with
    stricter limits (an older release, a parser that failed) still counts when read later."""
    from newsletter.inbound import mailboxes

    mailto = mailto_of(sent_digests(cli, settings)["ada@example.org"])
    subject = parse_qs(urlsplit(mailto).query)["subject"][0]
    box = write_mbox(tmp_path / "reader.mbox", nested(12, subject=subject))
    monkeypatch.setattr(mailboxes, "MAX_DEPTH", 10)
    first = cli("unsubscribes", "import", str(box)).output
    assert "unreadable  reader.mbox message 1  (nested deeper than the limit of 10 levels)" in first
    assert status_of(cli, "ada@example.org") == "active"

    monkeypatch.setattr(mailboxes, "MAX_DEPTH", 30)
    second = cli("unsubscribes", "import", str(box)).output
    assert "1 request(s): 1 unsubscribed" in second and "unreadable" not in second
    assert status_of(cli, "ada@example.org") == "unsubscribed"


def test_a_message_file_that_cannot_be_opened_holds_up_no_other(
    cli, settings, example_topics, tmp_path
):
    messages = sent_digests(cli, settings)
    maildir = write_maildir(tmp_path / "Maildir")
    (maildir / "new" / "1.gone.localhost").symlink_to(tmp_path / "nowhere")
    write_maildir(maildir, request_for(mailto_of(messages["bo@example.org"]), "bo@example.org"))

    result = cli("unsubscribes", "import", str(maildir)).output

    assert "unreadable  Maildir message 1  (cannot read it (No such file or directory))" in result
    assert status_of(cli, "bo@example.org") == "unsubscribed"


def test_a_message_within_the_limits_is_read_and_one_past_them_is_not(tmp_path):
    deepest = tmp_path / "deepest.eml"
    deepest.write_text(nested(MAX_DEPTH, subject="unsubscribe"))
    too_deep = tmp_path / "too-deep.eml"
    too_deep.write_text(nested(MAX_DEPTH + 1))
    most = tmp_path / "most.eml"
    most.write_text(many_parts(MAX_PARTS - 1))  # and the multipart holding them
    too_many = tmp_path / "too-many.eml"
    too_many.write_text(many_parts(MAX_PARTS))

    for readable in (deepest, most):
        (received,) = read_messages(readable)
        assert received.message is not None and received.problem == "", readable.name
    (deep,) = read_messages(too_deep)
    assert (deep.message, deep.problem) == (None, HOSTILE["nested"][1])
    assert deep.key.startswith("sha256:")  # no Message-ID: the hash of its bytes
    (many,) = read_messages(too_many)
    assert (many.message, many.problem) == (None, HOSTILE["parts"][1])


def test_an_oversized_message_is_known_by_its_headers_without_being_parsed(tmp_path):
    big = tmp_path / "big.eml"
    big.write_text(oversized())
    (received,) = read_messages(big)
    assert (received.message, received.problem) == (None, HOSTILE["size"][1])
    assert received.key == "<big@example.net>"


def test_walking_a_message_parsed_elsewhere_never_recurses_without_bound():
    """bounces_in and message_key walk a message without recursion, so even one that did not
    come through the bounded parser stops at the limits instead of exhausting the stack."""
    root = email.message_from_string(f"{HEAD}Subject: x\n\nx\n", policy=policy.compat32)
    part = root
    for _ in range(5_000):  # deeper than Python's recursion limit
        child = email.message_from_string("Content-Type: text/plain\n\nx\n", policy=policy.compat32)
        part.set_payload([child])
        part = child
    with pytest.raises(UnreadableMessage, match="nested deeper than the limit"):
        bounces_in(root)
    assert message_key(root).startswith("sha256:")
