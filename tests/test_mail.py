"""Mail: the digest's MIME message, the outbox folder, and SMTP against a real local server."""

from __future__ import annotations

import email
import re
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import quote

import pytest
from smtp_server import LocalSMTPServer, ReceivedMessage

from newsletter.config import Settings
from newsletter.delivery import smtp
from newsletter.delivery.outbox import OutboxTransport, outbox_file_name
from newsletter.delivery.outgoing import Outgoing, SendResult, Transport, dot_stuffed, unstuffed
from newsletter.delivery.smtp import SMTPTransport, parse_smtp_url
from newsletter.delivery.transports import transport_from_settings
from newsletter.errors import ConfigError, DeliveryError, InvalidInput
from newsletter.message.compose import compose, message_bytes, message_id_for

PASSWORD = "p@ss:w/rd %#?"  # every character a URL must escape
URL_PASSWORD = quote(PASSWORD, safe="")
SENDER = "arXiv Digest <digest@example.org>"
UNSUBSCRIBE_URL = "https://digest.example.org/unsubscribe/" + "T" * 180
UNSUBSCRIBE_MAILTO = "mailto:unsubscribe@digest.example.org?subject=unsubscribe-abc"
WHEN = datetime(2025, 3, 4, 6, 0, tzinfo=UTC)


def make_message(index: int = 0, **overrides: object) -> EmailMessage:
    fields: dict = {
        "sender": SENDER,
        "to": f"Reader {index} <reader{index}@example.net>",
        "subject": f"New papers in cs.CL, day {index}",
        "html": f"<html><body><h1>Digest {index}</h1><p>Attention is all you need.</p></body>",
        "text": f"Digest {index}\n\nAttention is all you need.\n",
        "message_id": f"<digest-{index}@example.org>",
        "list_id": "arXiv Digest <digest.example.org>",
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "unsubscribe_mailto": UNSUBSCRIBE_MAILTO,
        "date": WHEN,
    }
    fields.update(overrides)
    return compose(**fields)


def outgoing(count: int, **overrides: object) -> list[Outgoing]:
    return [
        Outgoing.of(100 + i, make_message(i), recipient=f"reader{i}@example.net")
        for i in range(count)
    ]


def parse(message: EmailMessage) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(message_bytes(message))
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> list[EmailMessage]:
    return list(message.iter_parts())  # type: ignore[arg-type]


def content(part: EmailMessage) -> str:
    # Parsed from the CRLF wire form, text keeps its CRLFs; compare it as the template wrote it.
    return part.get_content().replace("\r\n", "\n")


# ---------------------------------------------------------------------------------- compose


def test_compose_is_text_then_html_with_every_header() -> None:
    parsed = parse(make_message(7))

    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parts(parsed)
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    for part in (plain, html):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(plain) == "Digest 7\n\nAttention is all you need.\n"
    assert "<h1>Digest 7</h1>" in content(html)

    assert parsed["From"] == SENDER
    assert parsed["To"] == "Reader 7 <reader7@example.net>"
    assert parsed["Subject"] == "New papers in cs.CL, day 7"
    assert parsed["Date"] == "Tue, 04 Mar 2025 06:00:00 +0000"
    assert parsed["Message-ID"] == "<digest-7@example.org>"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["List-Id"] == "arXiv Digest <digest.example.org>"
    assert parsed["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>, <{UNSUBSCRIBE_MAILTO}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_urls_stay_literal_and_mailto_gets_its_scheme() -> None:
    raw = message_bytes(make_message(unsubscribe_mailto="unsubscribe@digest.example.org"))

    # A long URL must not be folded inside, nor turned into =?utf-8?q?…?= encoded words.
    assert f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>,\r\n".encode() in raw
    assert b" <mailto:unsubscribe@digest.example.org>\r\n" in raw
    assert b"=?utf-8?" not in raw.split(b"\r\n\r\n")[0]


def test_message_id_gets_angle_brackets() -> None:
    assert parse(make_message(message_id="abc@example.org"))["Message-ID"] == "<abc@example.org>"


def test_unicode_subject_and_names_round_trip_as_ascii_headers() -> None:
    subject = "Résumé — 量子 papers 🚀 " + "déjà vu " * 20
    sender = "Zoë’s Digest <digest@example.org>"
    raw = message_bytes(make_message(subject=subject, sender=sender, to="Ådne <a@example.net>"))

    raw.decode("ascii")  # every header encoded, every body quoted-printable
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["Subject"] == subject
    assert parsed["From"] == sender
    assert parsed["To"] == "Ådne <a@example.net>"


def test_long_lines_are_wrapped_and_line_ends_are_crlf() -> None:
    html = "<p>" + "Transformers über alles. " * 400 + "</p>"  # one 10,000-character line
    text = "x" * 5000 + "\n"
    raw = message_bytes(make_message(html=html, text=text))

    head, _, body = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) < 998  # SMTP's hard limit
    assert max(len(line) for line in body.split(b"\r\n")) <= 78  # quoted-printable's
    assert b"\n" not in raw.replace(b"\r\n", b"")  # no bare LF: CRLF throughout
    plain, html_part = parts(BytesParser(policy=policy.default).parsebytes(raw))  # type: ignore[arg-type]
    assert content(plain) == text
    assert content(html_part).rstrip("\n") == html


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # A subject or display name crafted to smuggle a Bcc (or a second body) into the message.
        ("subject", "Hello{nl}Bcc: victim@example.com"),
        ("sender", "Digest{nl}Bcc: victim@example.com{nl} <digest@example.org>"),
        ("to", "Reader{nl}Bcc: victim@example.com{nl} <reader@example.net>"),
        ("list_id", "Digest{nl}Bcc: victim@example.com{nl} <digest.example.org>"),
        ("message_id", "<id@example.org>{nl}Bcc: victim@example.com"),
        ("unsubscribe_url", "https://example.org/u/1{nl}Bcc: victim@example.com"),
        ("unsubscribe_mailto", "mailto:u@example.org{nl}Bcc: victim@example.com"),
    ],
)
@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r", "\u2028"])
def test_header_injection_is_refused(field: str, value: str, newline: str) -> None:
    with pytest.raises(InvalidInput):
        make_message(**{field: value.format(nl=newline)})


@pytest.mark.parametrize("to", ["a@example.net, b@example.net", "nobody", ""])
def test_to_must_be_exactly_one_address(to: str) -> None:
    with pytest.raises(InvalidInput):
        make_message(to=to)


def test_message_id_for_is_stable_private_and_distinct() -> None:
    first = message_id_for("secret", "digest-2025-03-04", "subscriber-uuid-1", "example.org")

    assert re.fullmatch(r"<[0-9a-f]{32}@example\.org>", first)
    assert first == message_id_for(
        "secret", "digest-2025-03-04", "subscriber-uuid-1", "example.org"
    )
    assert "subscriber" not in first and "digest" not in first
    others = {
        message_id_for("secret", "digest-2025-03-05", "subscriber-uuid-1", "example.org"),
        message_id_for("secret", "digest-2025-03-04", "subscriber-uuid-2", "example.org"),
        message_id_for("other secret", "digest-2025-03-04", "subscriber-uuid-1", "example.org"),
        # The separator matters: ("ab", "c") and ("a", "bc") are different pairs.
        message_id_for("secret", "digest-2025-03-04s", "ubscriber-uuid-1", "example.org"),
    }
    assert first not in others and len(others) == 4


def test_message_id_for_refuses_a_domain_that_could_inject() -> None:
    with pytest.raises(InvalidInput):
        message_id_for("secret", "d", "s", "example.org>\r\nBcc: x@example.com")


# ---------------------------------------------------------------------------------- outbox


def test_outbox_writes_parseable_files_and_a_rerun_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "var" / "outbox"
    results = list(OutboxTransport(folder).send(outgoing(3)))

    assert [result.key for result in results] == [100, 101, 102]
    assert all(result.ok for result in results)
    files = sorted(folder.iterdir())
    assert [path.name for path in files] == [f"digest-{i}@example.org.eml" for i in range(3)]
    assert {result.detail for result in results} == {str(path) for path in files}
    with files[1].open("rb") as handle:
        stored = email.message_from_binary_file(handle, policy=policy.default)
    assert stored["Message-ID"] == "<digest-1@example.org>"
    assert stored.get_body(("plain",)).get_content() == "Digest 1\n\nAttention is all you need.\n"  # type: ignore[union-attr]

    list(OutboxTransport(folder).send(outgoing(3)))
    assert sorted(folder.iterdir()) == files  # same Message-IDs: replaced, no temp files left


def test_outbox_reports_a_failed_write_without_stopping_the_batch(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the outbox folder should be")

    results = list(OutboxTransport(blocked).send(outgoing(2)))

    assert [(result.key, result.ok, result.permanent) for result in results] == [
        (100, False, False),
        (101, False, False),
    ]
    assert str(blocked) in results[0].detail


@pytest.mark.parametrize("message_id", ["<../../etc/passwd@x>", "<.hidden@x>", "<a/b@x>"])
def test_outbox_file_names_stay_inside_the_folder(message_id: str) -> None:
    name = outbox_file_name(message_id)

    assert "/" not in name and not name.startswith(".") and name.endswith(".eml")
    assert name != outbox_file_name("<a_b@x>")


# ------------------------------------------------------------------------- SMTP: the server


@pytest.fixture(params=["pipelining", "one command at a time"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalSMTPServer]]:
    """Start a local SMTP server with the given options; all are stopped after the test. Each
    test runs against a server that offers PIPELINING and against one that does not."""
    started: list[LocalSMTPServer] = []

    def start(**options: object) -> LocalSMTPServer:
        options.setdefault("pipelining", request.param == "pipelining")
        server = LocalSMTPServer(**options).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def smtp_transport(
    server: LocalSMTPServer, url: str | None = None, envelope_from: str | None = None
) -> SMTPTransport:
    return SMTPTransport(
        url or server.url,
        timeout=5,
        ssl_context=server.client_ssl_context(),
        envelope_from=envelope_from,
    )


def by_message_id(received: list[ReceivedMessage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in received:
        counts[message["Message-ID"]] = counts.get(message["Message-ID"], 0) + 1
    return counts


def test_smtp_delivers_a_batch_over_one_connection(smtp_server: Callable) -> None:
    server = smtp_server()
    batch = outgoing(3)

    with smtp_transport(server) as transport:
        results = list(transport.send(batch))
        later = list(transport.send(outgoing(1)))  # a second call reuses the open connection

    assert [(result.key, result.ok) for result in results + later] == [
        (100, True),
        (101, True),
        (102, True),
        (100, True),
    ]
    assert results[0].detail.startswith("250 2.0.0 Ok: queued as")
    assert server.connections == 1
    received = server.messages
    assert len(received) == 4
    for sent, got in zip(batch, received, strict=False):
        assert got.mail_from == "digest@example.org"
        assert got.rcpt_tos == (sent.recipient,)
        original = BytesParser(policy=policy.default).parsebytes(sent.data)
        for header in ("From", "To", "Subject", "Message-ID", "List-Unsubscribe", "Date"):
            assert got[header] == original[header]
        assert [content(p) for p in parts(got)] == [content(p) for p in parts(original)]


def test_smtp_sends_the_bytes_as_they_are_with_leading_dots_doubled(smtp_server: Callable):
    """A line starting with "." is doubled on the wire (RFC 5321) and arrives as it was."""
    server = smtp_server()
    text = ".starts with a dot\n..two dots\n.\nthe line above is a lone dot\n"
    html = "<p>x</p>\n" + "a" * 74 + "." + "b" * 20  # QP may start a line with the dot
    batch = [Outgoing.of(1, make_message(1, text=text, html=html), "ada@example.net")]
    with SMTPTransport(server.url, timeout=5) as transport:
        (result,) = transport.send(batch)

    assert result.ok
    (got,) = server.messages
    assert got.raw.replace(b"\r\n", b"\n") == batch[0].data.replace(b"\r\n", b"\n")
    assert content(parts(got)[0]) == text


def test_smtp_envelope_from_can_differ_from_the_from_header(smtp_server: Callable) -> None:
    server = smtp_server()
    transport = SMTPTransport(server.url, timeout=5, envelope_from="bounces@example.org")
    with transport:
        list(transport.send(outgoing(1)))

    assert server.messages[0].mail_from == "bounces@example.org"
    assert server.messages[0]["From"] == SENDER


def test_smtp_starttls_and_auth(smtp_server: Callable) -> None:
    server = smtp_server(starttls=True, require_starttls=True, auth=("ada", PASSWORD))
    assert "%40" in server.url  # the password travels URL-encoded and must be decoded

    with smtp_transport(server) as transport:
        results = list(transport.send(outgoing(2)))

    assert all(result.ok for result in results)
    assert [(m.tls, m.authenticated_as) for m in server.messages] == [(True, "ada")] * 2


def test_smtp_implicit_tls(smtp_server: Callable) -> None:
    server = smtp_server(implicit_tls=True, auth=("ada", PASSWORD))
    assert server.url.startswith("smtps://")

    with smtp_transport(server) as transport:
        results = list(transport.send(outgoing(1)))

    assert results[0].ok
    assert server.messages[0].tls and server.messages[0].authenticated_as == "ada"


def test_smtp_untrusted_certificate_is_a_delivery_error(smtp_server: Callable) -> None:
    server = smtp_server(starttls=True)
    transport = SMTPTransport(server.url, timeout=5)  # the system trust store only

    with pytest.raises(DeliveryError, match="certificate") as raised:
        list(transport.send(outgoing(1)))

    assert f"127.0.0.1:{server.port}" in str(raised.value)
    assert server.messages == []


def test_smtp_starttls_required_but_not_offered(smtp_server: Callable) -> None:
    server = smtp_server()

    with pytest.raises(DeliveryError, match="STARTTLS"):
        list(smtp_transport(server, server.url + "?starttls=require").send(outgoing(1)))
    assert server.messages == []


def test_smtp_rejected_login_is_a_delivery_error_without_the_password(
    smtp_server: Callable,
) -> None:
    server = smtp_server(starttls=True, auth=("ada", "right password"))
    url = f"smtp://ada:{URL_PASSWORD}@127.0.0.1:{server.port}"

    with pytest.raises(DeliveryError) as raised:
        list(smtp_transport(server, url).send(outgoing(1)))

    message = str(raised.value)
    assert "ada" in message and "535" in message and f"127.0.0.1:{server.port}" in message
    assert PASSWORD not in message and URL_PASSWORD not in message
    assert server.messages == []


def test_smtp_temporary_failure_at_data_is_not_permanent(smtp_server: Callable) -> None:
    server = smtp_server(tempfail_data=1)

    with smtp_transport(server) as transport:
        first, second = transport.send(outgoing(2))

    assert (first.key, first.ok, first.permanent) == (100, False, False)
    assert "451" in first.detail
    assert second.ok  # the connection stays usable after a refusal
    assert [m["Message-ID"] for m in server.messages] == ["<digest-1@example.org>"]


def test_smtp_refused_recipient_is_permanent_with_the_server_text(smtp_server: Callable) -> None:
    server = smtp_server(reject_recipients={"reader1@example.net"})

    with smtp_transport(server) as transport:
        results = list(transport.send(outgoing(3)))

    assert [(result.ok, result.permanent) for result in results] == [
        (True, False),
        (False, True),
        (True, False),
    ]
    assert results[1].detail.startswith("550 5.1.1")
    assert "Recipient address rejected" in results[1].detail
    assert [m.rcpt_tos for m in server.messages] == [
        ("reader0@example.net",),
        ("reader2@example.net",),
    ]


@pytest.mark.parametrize(
    "refusal, stage, reply",
    [
        ({"reject_senders": {"digest@example.org"}}, "mail", "550 5.7.1"),
        ({"reject_recipients": {"reader0@example.net"}}, "rcpt", "550 5.1.1"),
        ({"reject_data": 1}, "data", "554 5.7.1"),
    ],
)
def test_a_permanent_refusal_says_which_step_refused(
    smtp_server: Callable, refusal: dict, stage: str, reply: str
) -> None:
    # Only a refused recipient is about the address: the sender and the message are ours.
    server = smtp_server(**refusal)

    with smtp_transport(server) as transport:
        (result,) = transport.send(outgoing(1))

    assert (result.ok, result.permanent, result.stage) == (False, True, stage)
    assert result.detail.startswith(reply)
    assert server.messages == []


def test_a_drop_during_data_defers_that_message_and_reconnects(smtp_server: Callable) -> None:
    # The server may have kept a message whose DATA was cut off: resending it at once could
    # deliver it twice, so it is reported as a temporary failure (retried after a backoff).
    server = smtp_server(drop_data=1)
    batch = outgoing(3)

    with smtp_transport(server) as transport:
        first, *rest = transport.send(batch)

    assert (first.ok, first.permanent) == (False, False)
    assert "lost during DATA" in first.detail and "retried later" in first.detail
    assert all(result.ok for result in rest)
    assert server.connections == 2
    assert by_message_id(server.messages) == {f"<digest-{i}@example.org>": 1 for i in (1, 2)}


def test_every_drop_during_data_is_a_temporary_failure(smtp_server: Callable) -> None:
    server = smtp_server(drop_data=2)

    with smtp_transport(server) as transport:
        first, second, third = transport.send(outgoing(3))

    assert [(r.ok, r.permanent) for r in (first, second)] == [(False, False), (False, False)]
    assert third.ok
    assert by_message_id(server.messages) == {"<digest-2@example.org>": 1}


# ------------------------------------------------------------------ SMTP: PIPELINING


def test_pipelining_gives_each_message_its_own_reply(smtp_server: Callable, monkeypatch) -> None:
    """Refusals at MAIL, RCPT and the end of DATA, among accepted messages, over one pipelined
    connection: each result is its own message's, and only the accepted ones arrive."""
    server = smtp_server(
        pipelining=True,
        reject_recipients={"reader1@example.net"},
        reject_data=1,  # the first DATA: reader0's
        tempfail_data=0,
    )
    # The classic exchange, one command at a time, must not be what runs.
    monkeypatch.setattr(smtplib.SMTP, "mail", _not_called)
    monkeypatch.setattr(smtplib.SMTP, "rcpt", _not_called)
    batch = outgoing(5)
    batch[3] = Outgoing.of(103, make_message(3), recipient="reader3@example.net")
    transport = smtp_transport(server, envelope_from=None)

    with transport:
        results = list(transport.send(batch))

    assert [(r.key, r.ok, r.permanent, r.stage) for r in results] == [
        (100, False, True, "data"),
        (101, False, True, "rcpt"),
        (102, True, False, None),
        (103, True, False, None),
        (104, True, False, None),
    ]
    assert results[0].detail.startswith("554 5.7.1")
    assert results[1].detail.startswith("550 5.1.1")
    assert server.connections == 1
    assert [m.rcpt_tos for m in server.messages] == [(f"reader{i}@example.net",) for i in (2, 3, 4)]
    assert by_message_id(server.messages) == {f"<digest-{i}@example.org>": 1 for i in (2, 3, 4)}


def _not_called(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a command was sent on its own though the server offers PIPELINING")


def test_pipelining_a_refused_sender_and_a_temporary_failure(smtp_server: Callable) -> None:
    server = smtp_server(pipelining=True, tempfail_data=1)

    with smtp_transport(server, envelope_from="bad@example.org") as transport:
        server._handler.reject_senders = {"bad@example.org"}
        refused = list(transport.send(outgoing(2)))
        server._handler.reject_senders = set()
        later = list(transport.send(outgoing(2)))

    assert [(r.ok, r.permanent, r.stage) for r in refused] == [(False, True, "mail")] * 2
    assert [(r.key, r.ok, r.permanent) for r in later] == [(100, False, False), (101, True, False)]
    assert "451" in later[0].detail
    assert by_message_id(server.messages) == {"<digest-1@example.org>": 1}


def test_pipelining_answers_the_message_in_flight_before_a_failure_of_the_caller(
    smtp_server: Callable,
) -> None:
    """Making the next message fails while one is in flight: its reply is read and its result
    given first, so the caller records it before handling the error."""
    server = smtp_server(pipelining=True)
    batch = outgoing(2)

    def messages() -> Iterator[Outgoing]:
        yield from batch
        raise RuntimeError("the database went away")

    results = []
    with smtp_transport(server) as transport:
        with pytest.raises(RuntimeError, match="went away"):
            for result in transport.send(messages()):
                results.append(result)

    assert [(r.key, r.ok) for r in results] == [(100, True), (101, True)]
    assert len(server.messages) == 2


def test_pipelining_a_caller_that_stops_midway_leaves_no_reply_to_the_next_message(
    smtp_server: Callable,
) -> None:
    """The caller stops taking results (its own error) while the next message's commands are
    unanswered: the connection is dropped, and the next send starts clean, each message to
    its own recipient."""
    server = smtp_server(pipelining=True)

    with smtp_transport(server) as transport:
        results = transport.send(outgoing(3))
        first = next(results)
        results.close()
        later = list(transport.send(outgoing(2)))

    assert (first.key, first.ok) == (100, True)
    assert [(r.key, r.ok) for r in later] == [(100, True), (101, True)]
    assert [m.rcpt_tos for m in server.messages] == [
        ("reader0@example.net",),
        ("reader0@example.net",),
        ("reader1@example.net",),
    ]
    assert [m["To"] for m in server.messages] == [
        "Reader 0 <reader0@example.net>",
        "Reader 0 <reader0@example.net>",
        "Reader 1 <reader1@example.net>",
    ]


def test_smtp_sink_pipelined_refusals_and_drops_each_map_to_their_message() -> None:
    """Against Postfix's smtp-sink (which offers PIPELINING): a refusal at RCPT, at DATA,
    and a hang-up after the final dot each reach the right message, and nothing is lost."""
    from smtp_sink import SmtpSink

    cases = {
        ("-f", "RCPT"): ("rcpt", True, "500"),
        ("-r", "DATA"): ("data", False, "450"),
    }
    for options, (stage, permanent, code) in cases.items():
        with SmtpSink(*options) as sink, SMTPTransport(sink.url, timeout=5) as transport:
            results = list(transport.send(outgoing(3)))
            assert sink.messages() == []
        assert [(r.key, r.ok, r.permanent, r.stage) for r in results] == [
            (100 + i, False, permanent, stage) for i in range(3)
        ], options
        assert all(r.detail.startswith(code) for r in results)
    with SmtpSink("-q", ".") as sink, SMTPTransport(sink.url, timeout=5) as transport:
        results = list(transport.send(outgoing(3)))
        kept = sink.messages()
    # Each message arrived, and the relay hung up instead of answering: each is a temporary
    # failure of its own (retried later), none is sent again at once.
    assert [(r.key, r.ok, r.permanent) for r in results] == [
        (100 + i, False, False) for i in range(3)
    ]
    assert all("lost during DATA" in r.detail for r in results)
    assert sorted(m.recipient for m in kept) == [f"reader{i}@example.net" for i in range(3)]


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.org",
        "a.b+c%d_e-f@sub.example-x.org",
        "Ada <ada@example.org>",
        '"odd name"@example.org',
        "<ada@example.org>",
        "ada",
        "",
        "bücher@example.org",
    ],
)
def test_quoted_addresses_are_smtplibs(address: str) -> None:
    assert smtp._quoted(address) == smtplib.quoteaddr(address)
    assert smtp._quoted_sender(address) == smtplib.quoteaddr(address)


@pytest.mark.parametrize(
    "data",
    [
        b"plain\r\n",
        b".first\r\n..two\r\n.\r\nend\r\n",
        b"a\r\n.\r\n",
        b"no line end",
        b"",
    ],
)
def test_dot_stuffing_round_trips(data: bytes) -> None:
    wire = dot_stuffed(data)
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n" or wire.endswith(b"\n.\r\n")
    assert b"\n.\r\n" not in wire[:-3]  # no early end of the message
    if data.endswith(b"\r\n"):
        assert unstuffed(wire) == data
        assert Outgoing(1, "a@b", "c@d", "<m>", wire=wire).data == data


def test_smtp_connection_refused_names_the_server_but_not_the_password() -> None:
    transport = SMTPTransport(f"smtp://ada:{URL_PASSWORD}@127.0.0.1:9", timeout=5)

    with pytest.raises(DeliveryError) as raised:
        list(transport.send(outgoing(1)))

    message = str(raised.value)
    assert "127.0.0.1:9" in message and "refused" in message.lower()
    assert PASSWORD not in message and URL_PASSWORD not in message


def test_smtp_non_ascii_password_is_a_delivery_error(smtp_server: Callable) -> None:
    server = smtp_server(starttls=True, auth=("ada", "pässword"))
    url = f"smtp://ada:{quote('pässword')}@127.0.0.1:{server.port}"

    # smtplib sends AUTH as ASCII only: say so rather than fail with a UnicodeEncodeError.
    with pytest.raises(DeliveryError, match="ASCII") as raised:
        list(smtp_transport(server, url).send(outgoing(1)))
    assert "pässword" not in str(raised.value)


# ------------------------------------------------------------------------ SMTP: the URL


def test_parse_smtp_url_reads_ports_tls_and_credentials() -> None:
    plain = parse_smtp_url("smtp://relay.example.org")
    secure = parse_smtp_url("smtps://me%40example.org:p%2Fw%40@relay.example.org?starttls=never")
    required = parse_smtp_url("smtp://relay.example.org:587?starttls=require")

    assert (plain.port, plain.implicit_tls, plain.starttls, plain.username) == (
        25,
        False,
        "auto",
        None,
    )
    assert (secure.port, secure.implicit_tls) == (465, True)
    assert (secure.username, secure.password) == ("me@example.org", "p/w@")
    assert (required.port, required.starttls) == (587, "require")
    assert "p/w@" not in repr(secure)


@pytest.mark.parametrize(
    "url",
    [
        "http://ada:hunter22@relay.example.org",
        "smtp://ada:hunter22@relay.example.org:notaport",
        "smtp://ada:hunter22@relay.example.org?tls=maybe",
    ],
)
def test_parse_smtp_url_errors_hide_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_smtp_url(url)
    assert "hunter22" not in str(raised.value)


def test_transport_from_settings(tmp_path: Path) -> None:
    smtp = transport_from_settings(
        Settings(_env_file=None, var_dir=tmp_path, smtp_url="smtp://u:p@relay.example.org:587")  # type: ignore[call-arg]
    )
    outbox = transport_from_settings(Settings(_env_file=None, var_dir=tmp_path))  # type: ignore[call-arg]

    assert isinstance(smtp, SMTPTransport)
    assert (smtp.endpoint.where, smtp.endpoint.password) == ("relay.example.org:587", "p")
    assert smtp.pipelining  # NEWSLETTER_SMTP_PIPELINING's default
    assert isinstance(outbox, OutboxTransport) and outbox.folder == tmp_path / "outbox"
    one_at_a_time = transport_from_settings(
        Settings(
            _env_file=None,
            var_dir=tmp_path,
            smtp_url="smtp://relay.example.org",
            smtp_pipelining=False,
        )  # type: ignore[call-arg]
    )
    assert isinstance(one_at_a_time, SMTPTransport) and not one_at_a_time.pipelining


# --------------------------------------------------- the contract every transport keeps


@pytest.fixture(params=["outbox", "smtp"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Transport]:
    if request.param == "outbox":
        chosen: Transport = OutboxTransport(tmp_path / "outbox")
    else:
        server = LocalSMTPServer().start()
        request.addfinalizer(server.stop)
        chosen = smtp_transport(server)
    yield chosen
    chosen.close()


class TestTransportContract:
    def test_one_result_per_message_in_order(self, transport: Transport) -> None:
        results = list(transport.send(outgoing(4)))

        assert [result.key for result in results] == [100, 101, 102, 103]
        assert all(isinstance(r, SendResult) and r.ok and r.detail for r in results)

    def test_results_come_as_it_goes(self, transport: Transport) -> None:
        consumed: list[int] = []

        def lazily() -> Iterator[Outgoing]:
            for item in outgoing(3):
                consumed.append(item.key)
                yield item

        results = transport.send(lazily())
        assert next(results).key == 100
        assert consumed == [100]  # the first result came before the second message was read
        assert [result.key for result in results] == [101, 102]

    def test_an_empty_batch_yields_nothing(self, transport: Transport) -> None:
        assert list(transport.send([])) == []
