"""One email as a MIME message (`compose`) and its bytes on the wire (`message_bytes`): the
digest's text and HTML parts, its list headers (List-Id, one-click List-Unsubscribe), a
Message-ID that names neither digest nor subscriber, and header values refused when they
could start a header of their own."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from newsletter.errors import InvalidInput
from newsletter.message.addresses import needs_smtputf8, smtp_address

# CRLF on the wire and on disk, 78-column folding for ordinary headers, and the headers we store
# already folded (List-Unsubscribe) written exactly as stored: the stock policy turns a long URL
# into RFC 2047 encoded words, which no mail client can open or POST to.
MESSAGE_POLICY = policy.SMTP.clone(refold_source="none")


# Everything str.splitlines() breaks on, and NUL: any of them in a header value could end the
# header early and start one the caller never wrote.
_LINE_BREAK = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


_URL_UNSAFE = re.compile(r"[\s<>\x00-\x1f\x7f]")


_MAX_URL_LENGTH = 900  # a folded header line must stay under SMTP's 998


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


SUBJECT_WORD = "unsubscribe"


def mailto_for(address: str, token: str) -> str:
    """The List-Unsubscribe `mailto:` of the subscriber whose unsubscribe token this is."""
    return f"mailto:{address}?subject={SUBJECT_WORD}%20{token}"
