"""Mail: the MIME message of a digest, and the transports that deliver it.

Two transports share one small interface (`Transport`): the outbox folder (the default, nothing
to set up) and an SMTP relay. Both take a batch and yield one result per message as they go, so
the caller can record each delivery as it becomes known and an interrupted batch resumes where
it stopped. A message travels as its final bytes (`Outgoing`): a digest's are made by
substitution in a template encoded once per segment (`mime_template`), and no transport
encodes anything again.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import smtplib
import ssl
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import dkim

from newsletter.config import ascii_domain, check_smtp_url, shown_setting
from newsletter.errors import ConfigError, DeliveryError, InvalidInput
from newsletter.ratelimit import SendPace

if TYPE_CHECKING:
    from newsletter.config import Settings

log = logging.getLogger(__name__)

# CRLF on the wire and on disk, 78-column folding for ordinary headers, and the headers we store
# already folded (List-Unsubscribe) written exactly as stored: the stock policy turns a long URL
# into RFC 2047 encoded words, which no mail client can open or POST to.
MESSAGE_POLICY = policy.SMTP.clone(refold_source="none")

# Everything str.splitlines() breaks on, and NUL: any of them in a header value could end the
# header early and start one the caller never wrote.
_LINE_BREAK = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_URL_UNSAFE = re.compile(r"[\s<>\x00-\x1f\x7f]")
_MAX_URL_LENGTH = 900  # a folded header line must stay under SMTP's 998


# ---------------------------------------------------------------------------------- composing


def compose(
    *,
    sender: str,
    to: str,
    subject: str,
    html: str | None,
    text: str,
    message_id: str,
    list_id: str | None,
    unsubscribe_url: str | None,
    unsubscribe_mailto: str | None,
    date: datetime | None = None,
) -> EmailMessage:
    """One digest email: text/plain then text/html (text/plain alone when `html` is None, for
    readers who chose plain text), with the list headers mail clients use.

    A message that is not list mail (a confirmation request) passes None for all three list
    values, explicitly. Raises InvalidInput when a header value spans lines or an address
    cannot be used.
    """
    one_line = {"sender": sender, "to": to, "subject": subject, "list_id": list_id or ""}
    for name, value in one_line.items():
        _require_one_line(name, value)
    message = EmailMessage(policy=MESSAGE_POLICY)
    # The sender's domain in IDNA too: an encoded word is not allowed inside an address.
    message["From"] = _with_smtp_address(_single_address("sender", sender))
    message["To"] = _with_smtp_address(_single_address("to", to))
    message["Subject"] = subject
    message["Date"] = format_datetime(_aware(date or datetime.now(UTC)))
    message["Message-ID"] = _angle_message_id(message_id)
    if (list_id, unsubscribe_url, unsubscribe_mailto) != (None, None, None):
        message["List-Id"] = list_id
        message.set_raw("List-Unsubscribe", list_unsubscribe(unsubscribe_url, unsubscribe_mailto))
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable keeps every line short (SMTP's limit is 998) whatever the template made.
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def subject_header(subject: str) -> bytes:
    """The `Subject:` line (folded, encoded where not ASCII) as `compose` writes it, CRLF."""
    _require_one_line("subject", subject)
    _name, value = MESSAGE_POLICY.header_store_parse("Subject", subject)
    return MESSAGE_POLICY.fold_binary("Subject", value)


def list_unsubscribe(url: str, mailto: str) -> str:
    """The List-Unsubscribe value (RFC 2369), one URI a line so that no URI is ever folded."""
    if not mailto.lower().startswith("mailto:"):
        mailto = f"mailto:{mailto}"
    if not url.lower().startswith(("https://", "http://")):
        raise InvalidInput(f"the unsubscribe URL must be http(s), got {url[:80]!r}")
    for name, value in (("unsubscribe_url", url), ("unsubscribe_mailto", mailto)):
        if _URL_UNSAFE.search(value) or len(value) > _MAX_URL_LENGTH:
            raise InvalidInput(f"{name} is not a usable URI: {value[:80]!r}")
    return f"<{url}>,\n <{mailto}>"


def message_id_for(secret: str, digest_key: str, subscriber_key: str, domain: str) -> str:
    """A Message-ID that is the same for the same digest and subscriber, and reveals neither.

    A rerun of a send produces the same id (so the outbox overwrites, and a receiving server can
    spot the duplicate) while the id says nothing about who the subscriber is.
    """
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        raise InvalidInput(f"not a domain for a Message-ID: {domain[:80]!r}")
    # The namespace keeps this HMAC from ever matching one made with the same secret elsewhere;
    # NUL separators keep ("ab", "c") and ("a", "bc") apart.
    payload = "\x00".join(("message-id", digest_key, subscriber_key)).encode()
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return f"<{digest[:32]}@{domain}>"


def message_bytes(message: EmailMessage, linesep: str = "\r\n") -> bytes:
    """The message as bytes: CRLF line ends throughout (SMTP's), or LF ones for files.

    A message from or to an address whose local part is not ASCII has its headers in UTF-8
    (RFC 6532, sent with SMTPUTF8): such an address has no other form, and RFC 2047 words are
    not allowed in one.
    """
    addresses = [
        *getattr(message.get("From"), "addresses", ()),
        *getattr(message.get("To"), "addresses", ()),
    ]
    utf8 = any(needs_smtputf8(address.addr_spec) for address in addresses)
    return message.as_bytes(policy=MESSAGE_POLICY.clone(linesep=linesep, utf8=utf8))


def smtp_address(address: str) -> str:
    """The address as mail carries it: the domain in IDNA (`user@bücher.example` →
    `user@xn--bcher-kva.example`), the local part as it is. The result is ASCII unless the
    local part is not; only a server that offers SMTPUTF8 (RFC 6531) takes that one.

    Raises InvalidInput when the domain has no IDNA form.
    """
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        raise InvalidInput(f"not an email address: {address[:80]!r}")
    try:
        return f"{local}@{ascii_domain(domain)}"
    except ValueError as error:
        raise InvalidInput(f"the domain of {address[:80]!r} has no IDNA form: {error}") from None


def needs_smtputf8(address: str) -> bool:
    """Whether an address (as `smtp_address` gives it) can only travel with SMTPUTF8."""
    return not address.isascii()


def _require_one_line(name: str, value: str) -> None:
    if _LINE_BREAK.search(value):
        raise InvalidInput(f"{name} must be a single line, got {value[:80]!r}")


def _single_address(name: str, value: str) -> str:
    addresses = getaddresses([value])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        raise InvalidInput(f"{name} must be exactly one email address, got {value[:80]!r}")
    return value


def _with_smtp_address(value: str) -> str | Address:
    """A From or To value with its address as mail carries it (see `smtp_address`), its name
    kept."""
    name, address = getaddresses([value])[0]
    if address.isascii():
        return value
    local, _, domain = smtp_address(address).rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def _angle_message_id(message_id: str) -> str:
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    if not re.fullmatch(r"[^\s<>@]+@[^\s<>@]+", bare):
        raise InvalidInput(f"not a Message-ID: {message_id[:80]!r}")
    return f"<{bare}>"


def _aware(moment: datetime) -> datetime:
    # A naive datetime is taken as UTC: the Date header must carry an offset.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -------------------------------------------------------------------------- the interface


@dataclass(frozen=True)
class Outgoing:
    """One message to deliver, as the bytes to send (CRLF line ends, not dot-stuffed)."""

    key: int  # the caller's id for it (a delivery row id)
    recipient: str  # the envelope recipient (RCPT TO)
    sender: str  # the envelope sender (MAIL FROM): the From address, bare
    message_id: str  # as in its header, <…>: names the outbox file
    data: bytes

    @classmethod
    def of(cls, key: int, message: EmailMessage, recipient: str | None = None) -> Outgoing:
        """A composed message (see `compose`), to its To address unless told otherwise."""
        return cls(
            key=key,
            recipient=smtp_address(recipient or parseaddr(str(message.get("To", "")))[1]),
            sender=parseaddr(str(message.get("From", "")))[1],
            message_id=str(message.get("Message-ID", "")).strip(),
            data=message_bytes(message),
        )


Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class SendResult:
    """What became of one message."""

    key: int
    ok: bool
    permanent: bool  # a failure that retrying will not fix (5xx); False for 4xx and lost links
    detail: str  # the server's reply ("250 2.0.0 Ok"), or the outbox file path
    stage: Stage | None = None
    """Which step of the SMTP transaction failed, and so whose problem it is: "rcpt" the
    recipient's address, "mail" the sender's, "data" the message; None for none of them (a
    lost connection, the outbox)."""


class Transport(Protocol):
    """Delivers messages; `send` yields one result per message, as it goes."""

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]: ...

    def close(self) -> None: ...


def transport_from_settings(settings: Settings) -> Transport:
    """The SMTP relay when NEWSLETTER_SMTP_URL is set, else the outbox folder; DKIM-signed
    when NEWSLETTER_DKIM_KEY_FILE is set."""
    signer = DkimSigner.from_settings(settings)
    smtp_url = settings.smtp_url.get_secret_value().strip() if settings.smtp_url else ""
    transport: Transport
    if smtp_url:
        transport = SMTPTransport(smtp_url, timeout=settings.smtp_timeout, signer=signer)
    else:
        transport = OutboxTransport(
            settings.outbox_dir or settings.var_dir / "outbox", signer=signer
        )
    if settings.send_rate > 0:
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        transport = PacedTransport(transport, SendPace(settings.send_rate, redis_url))
    return transport


class PacedTransport:
    """Another transport, each message waiting for its slot under NEWSLETTER_SEND_RATE."""

    def __init__(self, inner: Transport, pace: SendPace) -> None:
        self.inner = inner
        self.pace = pace

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        return self.inner.send(self._paced(messages))

    def _paced(self, messages: Iterable[Outgoing]) -> Iterator[Outgoing]:
        for outgoing in messages:
            self.pace.wait()
            yield outgoing

    def close(self) -> None:
        self.inner.close()


# ------------------------------------------------------------------------------ DKIM

DKIM_SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
)  # fmt: skip
"""dkimpy's default list leaves out List-Unsubscribe-Post; RFC 8058 wants both signed."""


@dataclass(frozen=True)
class DkimSigner:
    """Adds a DKIM-Signature (rsa-sha256, relaxed/relaxed) to a message's final bytes."""

    selector: str
    domain: str
    private_key: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        if settings.dkim_key_file is None:
            return None
        try:
            key = Path(settings.dkim_key_file).read_bytes()
        except OSError as error:
            raise ConfigError(
                f"NEWSLETTER_DKIM_KEY_FILE: cannot read {settings.dkim_key_file} ({error.strerror})"
            ) from error
        return cls(settings.dkim_selector, settings.dkim_domain or settings.sender_domain, key)

    def sign(self, data: bytes) -> bytes:
        linesep = b"\r\n" if b"\r\n" in data[:2000] else b"\n"
        try:
            signature = dkim.sign(
                data,
                self.selector.encode(),
                self.domain.encode(),
                self.private_key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[name.encode() for name in DKIM_SIGNED_HEADERS],
                linesep=linesep,
            )
        except dkim.DKIMException as error:
            raise ConfigError(
                f"DKIM signing failed (check NEWSLETTER_DKIM_KEY_FILE): {error}"
            ) from error
        return signature + data


def _signed(signer: DkimSigner | None, data: bytes) -> bytes:
    return signer.sign(data) if signer is not None else data


# ------------------------------------------------------------------------------ the outbox


class OutboxTransport:
    """Writes each message as an .eml file named after its Message-ID (a rerun overwrites)."""

    def __init__(self, folder: Path, *, signer: DkimSigner | None = None) -> None:
        self.folder = Path(folder)
        self.signer = signer

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]:
        for outgoing in messages:
            yield self._write(outgoing)

    def close(self) -> None:
        """Nothing to release; here to fit the Transport interface."""

    def __enter__(self) -> OutboxTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write(self, outgoing: Outgoing) -> SendResult:
        path = self.folder / outbox_file_name(outgoing.message_id, outgoing.data)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # LF, as files on Unix have it: parsed back, the text reads as the template wrote it.
            data = _signed(self.signer, outgoing.data.replace(b"\r\n", b"\n"))
            _write_atomically(path, data)
        except OSError as error:
            # One failed write is a failed delivery, not the end of the batch.
            return SendResult(outgoing.key, ok=False, permanent=False, detail=f"{path}: {error}")
        return SendResult(outgoing.key, ok=True, permanent=False, detail=str(path))


def outbox_file_name(message_id: str, data: bytes = b"") -> str:
    """A file name from the Message-ID that cannot leave the folder or hide as a dotfile."""
    message_id = message_id.strip().removeprefix("<").removesuffix(">")
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", message_id)[:120].lstrip(".")
    if safe and safe == message_id:
        return f"{safe}.eml"
    # Two ids that sanitise alike (or a message without one) must not overwrite each other.
    source = message_id.encode() if message_id else data
    return f"{safe or 'message'}-{hashlib.sha256(source).hexdigest()[:16]}.eml"


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader (or a crash) sees the old file or the new one, never half a message.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# ---------------------------------------------------------------------------------- SMTP


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
