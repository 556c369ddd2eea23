"""The SMTP transport: one connection reused across batches (STARTTLS or TLS, AUTH), pipelined
replies read per message, and every reply turned into a sent, deferred or failed result.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from newsletter.config import check_smtp_url, shown_setting
from newsletter.delivery.dkim import DkimSigner, _signed
from newsletter.delivery.outgoing import Outgoing, SendResult, Stage
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


class SMTPTransport:
    """Delivers through an SMTP relay over one connection, kept open until `close()`.

    smtp:// uses STARTTLS when the server offers it (`?starttls=require` insists on it, `never`
    skips it); smtps:// is TLS from the start. A connection that cannot be opened at all raises
    DeliveryError; each message's fate is otherwise reported in its SendResult.
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
    ) -> None:
        self.endpoint = parse_smtp_url(url)
        self.signer = signer
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.envelope_from = envelope_from
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._connection: smtplib.SMTP | None = None

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
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

    def _deliver(self, outgoing: Outgoing) -> SendResult:
        sender = self.envelope_from or outgoing.sender
        if not sender:
            detail = "the message has no From address"
            return SendResult(outgoing.key, ok=False, permanent=True, detail=detail, stage="mail")
        data = _signed(self.signer, outgoing.data)
        lost: OSError | None = None
        # A relay may close an idle or busy connection at any time: reconnect once and retry the
        # message at once, as long as the drop came before DATA. A drop from DATA on may mean
        # the relay kept the message: that one is left to the caller's backoff, not resent now.
        for _attempt in range(2):
            connection = self._connection or self._open()
            try:
                return self._transact(connection, outgoing, sender, data)
            except UnicodeError as error:  # smtplib encodes commands as ASCII (or UTF-8)
                self._reset(connection)
                detail = f"not sent: the address cannot be written in SMTP: {error}"
                return SendResult(outgoing.key, ok=False, permanent=True, detail=detail)
            except _LostInData as error:
                log.warning(
                    "SMTP connection to %s lost during DATA: %s", self.endpoint.where, error
                )
                self._discard()
                detail = (
                    f"connection to {self.endpoint.where} lost during DATA ({error.__cause__});"
                    " the server may have kept the message, so it is retried later, not at once"
                )
                return SendResult(outgoing.key, ok=False, permanent=False, detail=detail)
            except OSError as error:  # smtplib's errors are OSErrors; replies are handled inside
                log.warning("SMTP connection to %s lost: %s", self.endpoint.where, error)
                self._discard()
                lost = error
        detail = f"connection to {self.endpoint.where} lost: {lost}"
        return SendResult(outgoing.key, ok=False, permanent=False, detail=detail)

    def _transact(
        self, connection: smtplib.SMTP, outgoing: Outgoing, sender: str, data: bytes
    ) -> SendResult:
        """MAIL, RCPT, DATA; the first reply that is not a success decides the result."""
        options = [f"SIZE={len(data)}"] if connection.has_extn("size") else []
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
        stage: Stage = "mail"
        try:
            code, reply = connection.mail(sender, options)
            if code == 250:
                stage = "rcpt"
                code, reply = connection.rcpt(outgoing.recipient)
                if code in (250, 251):
                    stage = "data"
                    try:
                        code, reply = _data(connection, data)
                    except smtplib.SMTPResponseException:
                        raise
                    except OSError as error:
                        raise _LostInData(str(error)) from error
                    return _reply_result(outgoing.key, _unless_closing(code, reply), reply, stage)
        except smtplib.SMTPResponseException as error:  # DATA was not answered with 354
            code, reply = error.smtp_code, error.smtp_error
        self._reset(connection)
        return _reply_result(outgoing.key, _unless_closing(code, reply), reply, stage)

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


def _data(connection: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """DATA, then the message and its final dot: what `smtplib.SMTP.data` does for bytes.

    smtplib dot-stuffs with a multi-line regex, ~1 ms for a 100 KB digest (as long as all the
    rest of a message's SMTP exchange); one `bytes.replace` does the same ten times faster.
    """
    code, reply = connection.docmd("data")
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    stuffed = data.replace(b"\n.", b"\n..")  # a "." starting a line is doubled (RFC 5321)
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    ending = b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n"
    connection.send(stuffed + ending)  # one write: a lone "." could wait out Nagle's delay
    return connection.getreply()


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
