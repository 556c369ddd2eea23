"""The SMTP transport: one connection reused across batches (STARTTLS or TLS, AUTH), PIPELINING
(RFC 2920) where the server offers it, and every reply turned into a sent, deferred or failed
result.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.config import check_smtp_url, shown_setting
from newsletter.delivery.dkim import DkimSigner, _signed
from newsletter.delivery.outgoing import Outgoing, SendResult, Stage, dot_stuffed
from newsletter.errors import ConfigError, DeliveryError
from newsletter.message.addresses import needs_smtputf8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SMTPEndpoint:
    """Where and how to reach the relay, from `smtp[s]://user:pass@host:port?starttls=…`."""

    host: str
    port: int
    implicit_tls: bool
    starttls: Literal["auto", "require", "never"]
    username: str | None = None
    password: str = field(default="", repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SMTPEndpoint:
    """Read an SMTP URL; the password never appears in an error (ConfigError)."""
    try:
        check_smtp_url(url)  # the same check as when the settings are read
    except ValueError as error:
        raise ConfigError(f"{shown_setting('smtp_url', url)}: {error}") from None
    parts = urlsplit(url)
    return SMTPEndpoint(
        host=parts.hostname or "",
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        implicit_tls=parts.scheme == "smtps",
        starttls=parse_qs(parts.query).get("starttls", ["auto"])[-1],  # type: ignore[arg-type]
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password or ""),
    )


class _LostInData(Exception):
    """The connection dropped once DATA had begun: the message may have been accepted."""


@dataclass(frozen=True)
class _InFlight:
    """A message whose content and final dot are written and whose reply is not read yet."""

    outgoing: Outgoing
    connection: smtplib.SMTP


class SMTPTransport:
    """Delivers through an SMTP relay over one connection, kept open until `close()`.

    smtp:// uses STARTTLS when the server offers it (`?starttls=require` insists on it, `never`
    skips it); smtps:// is TLS from the start. A connection that cannot be opened at all raises
    DeliveryError; each message's fate is otherwise reported in its SendResult.

    With `pipelining` (the default) and a server that offers PIPELINING, a message's MAIL, RCPT
    and DATA go in one write and their replies are read together, and the next message's go
    out before the previous message's final reply is read: one round trip a message instead of
    four, and the message built while the server takes in the one before. Each message still
    gets its own result from its own replies, and at most one message is ever sent and not yet
    answered.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        *,
        envelope_from: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        signer: DkimSigner | None = None,
        pipelining: bool = True,
    ) -> None:
        self.endpoint = parse_smtp_url(url)
        self.pipelining = pipelining
        self.signer = signer
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.envelope_from = envelope_from
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._connection: smtplib.SMTP | None = None

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        if self.pipelining:
            yield from self._send_pipelined(messages)
            return
        for outgoing in messages:
            yield self._deliver(outgoing)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except OSError:  # already gone: nothing to say goodbye to
            connection.close()

    def __enter__(self) -> SMTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _deliver(self, outgoing: Outgoing, attempts: int = 2) -> SendResult:
        sender = self.envelope_from or outgoing.sender
        if not sender:
            return _no_sender(outgoing)
        size, wire = self._bytes(outgoing)
        lost: OSError | None = None
        # A relay may close an idle or busy connection at any time: reconnect once and retry the
        # message at once, as long as the drop came before DATA. A drop from DATA on may mean
        # the relay kept the message: that one is left to the caller's backoff, not resent now.
        for _attempt in range(attempts):
            connection = self._connection or self._open()
            try:
                return self._transact(connection, outgoing, sender, size, wire)
            except UnicodeError as error:  # smtplib encodes commands as ASCII (or UTF-8)
                self._reset(connection)
                return _unwritable(outgoing, error)
            except _LostInData as error:
                self._discard()
                return self._lost_in_data(outgoing, error.__cause__)
            except OSError as error:  # smtplib's errors are OSErrors; replies are handled inside
                log.warning("SMTP connection to %s lost: %s", self.endpoint.where, error)
                self._discard()
                lost = error
        return self._lost(outgoing, lost)

    def _bytes(self, outgoing: Outgoing) -> tuple[int, bytes]:
        """The message's size (for SIZE=, an estimate by RFC 1870) and its bytes as DATA sends
        them (dot-stuffed), DKIM-signed first when a signer is set."""
        if self.signer is None:
            return outgoing.size, outgoing.wire
        data = _signed(self.signer, outgoing.data)
        return len(data), dot_stuffed(data)

    def _lost_in_data(self, outgoing: Outgoing, error: BaseException | None) -> SendResult:
        log.warning("SMTP connection to %s lost during DATA: %s", self.endpoint.where, error)
        detail = (
            f"connection to {self.endpoint.where} lost during DATA ({error});"
            " the server may have kept the message, so it is retried later, not at once"
        )
        return SendResult(outgoing.key, ok=False, permanent=False, detail=detail)

    def _lost(self, outgoing: Outgoing, error: BaseException | None) -> SendResult:
        detail = f"connection to {self.endpoint.where} lost: {error}"
        return SendResult(outgoing.key, ok=False, permanent=False, detail=detail)

    def _options(
        self, connection: smtplib.SMTP, outgoing: Outgoing, sender: str, size: int
    ) -> list[str] | SendResult:
        """MAIL FROM's options (SIZE, SMTPUTF8 when an address needs it); or why the message
        cannot go through this server."""
        options = [f"SIZE={size}"] if connection.has_extn("size") else []
        utf8_needed_by: Stage | None = None
        if needs_smtputf8(sender):
            utf8_needed_by = "mail"
        elif needs_smtputf8(outgoing.recipient):
            utf8_needed_by = "rcpt"
        if utf8_needed_by is not None:
            if not connection.has_extn("smtputf8"):
                detail = (
                    f"not sent: {self.endpoint.where} does not offer SMTPUTF8 (RFC 6531), which"
                    " an address with a non-ASCII local part needs"
                )
                return SendResult(outgoing.key, False, True, detail, stage=utf8_needed_by)
            options.append("SMTPUTF8")
        return options

    def _transact(
        self, connection: smtplib.SMTP, outgoing: Outgoing, sender: str, size: int, wire: bytes
    ) -> SendResult:
        """MAIL, RCPT, DATA; the first reply that is not a success decides the result."""
        options = self._options(connection, outgoing, sender, size)
        if isinstance(options, SendResult):
            return options
        stage: Stage = "mail"
        try:
            code, reply = connection.mail(sender, options)
            if code == 250:
                stage = "rcpt"
                code, reply = connection.rcpt(outgoing.recipient)
                if code in (250, 251):
                    stage = "data"
                    try:
                        code, reply = _data(connection, wire)
                    except smtplib.SMTPResponseException:
                        raise
                    except OSError as error:
                        raise _LostInData(str(error)) from error
                    return _reply_result(outgoing.key, _unless_closing(code, reply), reply, stage)
        except smtplib.SMTPResponseException as error:  # DATA was not answered with 354
            code, reply = error.smtp_code, error.smtp_error
        self._reset(connection)
        return _reply_result(outgoing.key, _unless_closing(code, reply), reply, stage)

    # ------------------------------------------------------------------ PIPELINING

    def _send_pipelined(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        """`send` with PIPELINING: each message's MAIL, RCPT and DATA in one write, and the
        next message's written before the final reply of the one in flight is read.

        A message's result is yielded (and so noted by the caller) before the next message's
        content goes: at most one message is ever accepted and not yet noted, as without
        pipelining. When making the next message fails (the caller's generator raises), the
        reply of the one in flight is read and yielded first.
        """
        flight: _InFlight | None = None
        iterator = iter(messages)
        try:
            while True:
                try:
                    outgoing = next(iterator)
                except StopIteration:
                    break
                except BaseException:
                    if flight is not None:
                        yield self._land(flight)
                    raise
                flight = yield from self._pipelined(outgoing, flight)
            if flight is not None:
                yield self._land(flight)
        except GeneratorExit:
            # The caller stopped taking results midway (its own error): a message's commands
            # or content may be unanswered, so the connection's state is unknown. It is closed,
            # never reused: the next message must not read this one's replies as its own.
            self._discard()
            raise

    def _pipelined(
        self, outgoing: Outgoing, flight: _InFlight | None
    ) -> Generator[SendResult, None, _InFlight | None]:
        """Send one message (yielding its result, and the one in flight's), pipelined; the
        message now in flight, if any."""
        sender = self.envelope_from or outgoing.sender
        if not sender:
            yield _no_sender(outgoing)
            return flight
        size, wire = self._bytes(outgoing)
        lost: BaseException | None = None
        for _attempt in range(2):
            connection = flight.connection if flight is not None else self._connection
            if connection is None:
                connection = self._open()
            if flight is None and not connection.has_extn("pipelining"):
                yield self._deliver(outgoing)  # one command at a time, as the server wants
                return None
            options = self._options(connection, outgoing, sender, size)
            if isinstance(options, SendResult):
                yield options
                return flight
            try:
                envelope = _envelope(sender, outgoing.recipient, options)
            except (UnicodeError, ValueError) as error:  # not ASCII without SMTPUTF8, CR/LF
                yield _unwritable(outgoing, error)
                return flight
            written = _write(connection, envelope)
            if flight is not None:
                yield self._land(flight)  # may find the connection gone (and discard it)
                flight = None
            if written is not None or self._connection is not connection:
                self._forget(connection)
                lost = written or lost or "the connection closed"
                continue
            replies = self._envelope_replies(connection, outgoing)
            if isinstance(replies, SendResult):  # lost while DATA was being answered
                yield replies
                return None
            if replies is None:  # lost before, or the server closing (421): again, at once
                lost = "the connection closed"
                continue
            failure, data_open = replies
            if failure is None:
                written = _write(connection, wire)
                if written is not None:
                    self._forget(connection)
                    yield self._lost_in_data(outgoing, written)
                    return None
                return _InFlight(outgoing, connection)
            yield self._refused(connection, outgoing, failure, data_open)
            return None
        yield self._lost(outgoing, lost)
        return None

    def _envelope_replies(
        self, connection: smtplib.SMTP, outgoing: Outgoing
    ) -> tuple[tuple[int, bytes, Stage] | None, bool] | SendResult | None:
        """The replies to MAIL, RCPT and DATA: the first refusal (or None) and whether DATA
        was answered 354; a result when the connection dropped as DATA was being answered
        (the server may count the message as begun); None when it dropped before, or the
        server said it is closing (421): the message is then sent again at once."""
        failure: tuple[int, bytes, Stage] | None = None
        data_open = False
        stage: Stage = "mail"
        try:
            for stage, good in (("mail", (250,)), ("rcpt", (250, 251)), ("data", (354,))):
                code, reply = _reply(connection)
                if code == 421:
                    raise smtplib.SMTPServerDisconnected(f"{code} {reply.decode(errors='replace')}")
                if stage == "data":
                    data_open = code == 354
                if code not in good and failure is None:
                    failure = (code, reply, stage)
        except OSError as error:
            self._forget(connection)
            if stage == "data" and failure is None:
                return self._lost_in_data(outgoing, error)
            log.warning("SMTP connection to %s lost: %s", self.endpoint.where, error)
            return None
        return failure, data_open

    def _refused(
        self,
        connection: smtplib.SMTP,
        outgoing: Outgoing,
        failure: tuple[int, bytes, Stage],
        data_open: bool,
    ) -> SendResult:
        """The result of a message MAIL or RCPT or DATA refused; the transaction ended."""
        code, reply, stage = failure
        try:
            if data_open:  # DATA taken though a recipient was not (RFC 2920 3.1): end it empty
                connection.send(b".\r\n")
                connection.getreply()
            connection.rset()
        except OSError:
            self._forget(connection)
        return _reply_result(outgoing.key, code, reply, stage)

    def _land(self, flight: _InFlight) -> SendResult:
        """The reply to the final dot of the message in flight, as its result."""
        outgoing = flight.outgoing
        try:
            code, reply = _reply(flight.connection)
        except OSError as error:
            self._forget(flight.connection)
            return self._lost_in_data(outgoing, error)
        if code == 421:  # closing: the message was not taken, so it goes again, at once
            self._forget(flight.connection)
            return self._deliver(outgoing, attempts=1)
        return _reply_result(outgoing.key, code, reply, "data")

    def _forget(self, connection: smtplib.SMTP) -> None:
        """Close a connection that failed, unless it was already replaced."""
        if self._connection is connection:
            self._discard()
        else:
            connection.close()

    def _reset(self, connection: smtplib.SMTP) -> None:
        # RSET makes the next message start clean after a refusal mid-transaction.
        try:
            connection.rset()
        except OSError:
            self._discard()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _open(self) -> smtplib.SMTP:
        connection: smtplib.SMTP | None = None
        try:
            connection = self._connect()
            self._secure(connection)
            if self.endpoint.username is not None:
                connection.login(self.endpoint.username, self.endpoint.password)
        except (OSError, UnicodeError) as error:  # refused, unreachable, TLS, AUTH, timeout…
            if connection is not None:
                connection.close()
            raise DeliveryError(self._describe(error)) from error
        if self.pipelining:  # the next message's commands go while the last one is unanswered
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connection = connection
        return connection

    def _connect(self) -> smtplib.SMTP:
        endpoint = self.endpoint
        if endpoint.implicit_tls:
            return smtplib.SMTP_SSL(
                endpoint.host,
                endpoint.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self.ssl_context,
            )
        return smtplib.SMTP(
            endpoint.host, endpoint.port, local_hostname=self.local_hostname, timeout=self.timeout
        )

    def _secure(self, connection: smtplib.SMTP) -> None:
        connection.ehlo_or_helo_if_needed()
        if self.endpoint.implicit_tls or self.endpoint.starttls == "never":
            return
        if connection.has_extn("starttls"):
            connection.starttls(context=self.ssl_context)
            connection.ehlo_or_helo_if_needed()  # STARTTLS forgets the first EHLO, by design
        elif self.endpoint.starttls == "require":
            raise smtplib.SMTPNotSupportedError("no STARTTLS offered, and the URL requires it")

    def _describe(self, error: OSError | UnicodeError) -> str:
        """Why the connection failed and what to do, in words. Nothing in it comes from the
        password: only the host, the port, the username and the server's own words."""
        where = self.endpoint.where
        url = "NEWSLETTER_SMTP_URL"
        if isinstance(error, UnicodeError):  # smtplib encodes AUTH as ASCII
            reason = "the SMTP username and password must be ASCII"
            todo = f"use an ASCII password in {url} (an app password, say)"
        elif isinstance(error, smtplib.SMTPAuthenticationError):
            reason = f"login as {self.endpoint.username!r} rejected: {_reply_text(error)}"
            todo = f"check the username and password in {url}"
        elif isinstance(error, smtplib.SMTPResponseException):
            reason = _reply_text(error)
            todo = f"check the host and port in {url}"
        elif isinstance(error, smtplib.SMTPNotSupportedError):  # no AUTH, no STARTTLS offered
            reason = str(error)
            if "STARTTLS" in reason:  # ours, for ?starttls=require
                todo = f"if the relay speaks TLS from the start (port 465), use smtps:// in {url}"
            else:  # smtplib's "SMTP AUTH extension not supported by server."
                todo = (
                    f"a relay that offers AUTH only after STARTTLS needs ?starttls=require (or"
                    f" smtps://) in {url}; one that needs no login, no user:password in it"
                )
        elif isinstance(error, ssl.SSLCertVerificationError):
            reason = f"TLS certificate not trusted: {error.verify_message}"
            todo = f"the relay needs a certificate for {self.endpoint.host} this machine trusts"
        elif isinstance(error, ssl.SSLError):
            reason = f"TLS failed: {error.reason or error}"
            todo = f"smtps:// is TLS from the start (465), smtp:// STARTTLS (587): check {url}"
        elif isinstance(error, TimeoutError):
            reason = f"no answer within {self.timeout:g} s"
            todo = f"check the host and port in {url}, or raise NEWSLETTER_SMTP_TIMEOUT"
        else:  # refused, unknown host, unreachable, dropped
            reason = error.strerror or str(error) or type(error).__name__
            todo = f"check that the relay is running and the host and port in {url}"
        return f"cannot use SMTP server {where}: {reason}; {todo}"


def _data(connection: smtplib.SMTP, wire: bytes) -> tuple[int, bytes]:
    """DATA, then the message dot-stuffed and its final dot (`Outgoing.wire`): what
    `smtplib.SMTP.data` does for bytes, whose multi-line regex takes ~1 ms for a 100 KB digest.
    """
    code, reply = connection.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    connection.send(wire)  # one write: a lone "." could wait out Nagle's delay
    return connection.getreply()


def _no_sender(outgoing: Outgoing) -> SendResult:
    detail = "the message has no From address"
    return SendResult(outgoing.key, ok=False, permanent=True, detail=detail, stage="mail")


def _unwritable(outgoing: Outgoing, error: Exception) -> SendResult:
    detail = f"not sent: the address cannot be written in SMTP: {error}"
    return SendResult(outgoing.key, ok=False, permanent=True, detail=detail)


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+")
"""An address `smtplib.quoteaddr` gives back as it is, in angle brackets."""


@lru_cache(maxsize=64)
def _quoted_sender(address: str) -> str:
    return smtplib.quoteaddr(address)  # parses the address: ~10 µs, once a sender


def _quoted(address: str) -> str:
    """`smtplib.quoteaddr`, without its parsing for a plain address."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _envelope(sender: str, recipient: str, options: list[str]) -> bytes:
    """MAIL, RCPT and DATA as one write, encoded as smtplib would (UTF-8 only with SMTPUTF8)."""
    mail_options = f" {' '.join(options)}" if options else ""
    commands = (
        f"mail FROM:{_quoted_sender(sender)}{mail_options}\r\n"
        f"rcpt TO:{_quoted(recipient)}\r\ndata\r\n"
    )
    if commands.count("\n") != 3 or "\r" in commands.replace("\r\n", ""):
        raise ValueError("an address holds a line break")
    return commands.encode("utf-8" if "SMTPUTF8" in options else "ascii")


def _reply(connection: smtplib.SMTP) -> tuple[int, bytes]:
    """The next reply of a pipelined exchange, what arrives acknowledged at once.

    Pipelined, a server may answer in two writes with nothing of ours in between (the last
    message's "250" as soon as its final dot is read, the next message's three replies once
    their commands arrive); if the server holds small writes until the last one is
    acknowledged (Nagle), the second waits for our delayed acknowledgement, up to 40 ms a
    message. TCP_QUICKACK (Linux; reset by the kernel, hence set before each read) sends it
    at once."""
    if _QUICKACK is not None:
        try:
            connection.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except (OSError, AttributeError):  # not TCP, or closed: the read says what happened
            pass
    return connection.getreply()


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _write(connection: smtplib.SMTP, data: bytes) -> OSError | None:
    """Write to the server; the error when the connection is gone (its replies may still be
    read: smtplib's own `send` would close it)."""
    try:
        connection.sock.sendall(data)
    except OSError as error:
        return error
    except AttributeError:  # no socket: closed meanwhile
        return smtplib.SMTPServerDisconnected("not connected")
    return None


def _unless_closing(code: int, reply: bytes) -> int:
    # 421: the server is closing the connection; the message was not taken, so it is a lost
    # connection (reconnect and retry) rather than a verdict on the message.
    if code == 421:
        raise smtplib.SMTPServerDisconnected(f"{code} {reply.decode(errors='replace')}")
    return code


def _reply_result(key: int, code: int, reply: bytes, stage: Stage) -> SendResult:
    detail = f"{code} {reply.decode('utf-8', errors='replace')}".replace("\n", " ")
    ok = 200 <= code < 300
    return SendResult(key, ok, permanent=code >= 500, detail=detail, stage=None if ok else stage)


def _reply_text(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{error.smtp_code} {text}".replace("\n", " ")
