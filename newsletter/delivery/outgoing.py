"""The transports' interface: a message as its final bytes (`Outgoing`), one result per message
(`SendResult`), and the `Transport` protocol every transport follows.

Transports take a batch and yield one result per message as they go, so the caller records each
delivery as it becomes known and an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Literal, Protocol

from newsletter.message.addresses import smtp_address
from newsletter.message.compose import message_bytes


class Outgoing:
    """One message to deliver, as the bytes to send (CRLF line ends).

    Made from either form of its bytes, the other made when first asked for: `data`, the
    message itself, or `wire`, the message as SMTP's DATA sends it (dot-stuffed, RFC 5321
    4.5.2, and ending in the final dot), which the mail merge writes at once (`wire_for`),
    sparing a pass over each message's bytes to stuff it.
    """

    __slots__ = ("key", "recipient", "sender", "message_id", "_data", "_wire")

    def __init__(
        self,
        key: int,  # the caller's id for it (a delivery row id)
        recipient: str,  # the envelope recipient (RCPT TO)
        sender: str,  # the envelope sender (MAIL FROM): the From address, bare
        message_id: str,  # as in its header, <…>: names the outbox file
        data: bytes | None = None,
        *,
        wire: bytes | None = None,
    ) -> None:
        if (data is None) == (wire is None):
            raise TypeError("an Outgoing is made from its data or its wire bytes, one of them")
        self.key, self.recipient, self.sender, self.message_id = key, recipient, sender, message_id
        self._data, self._wire = data, wire

    @property
    def data(self) -> bytes:
        """The message's bytes, not dot-stuffed."""
        if self._data is None:
            self._data = unstuffed(self._wire)
        return self._data

    @property
    def wire(self) -> bytes:
        """The message as DATA sends it: dot-stuffed, then the final dot."""
        if self._wire is None:
            self._wire = dot_stuffed(self._data)
        return self._wire

    @property
    def size(self) -> int:
        """About the message's size (its wire form's, when that is what it was made from)."""
        return len(self._data) if self._data is not None else len(self._wire)

    def __repr__(self) -> str:
        return f"Outgoing({self.key!r}, {self.recipient!r}, {self.message_id!r})"

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
    retry_after: float | None = None
    """Seconds the receiver asked us to wait before trying again (a chat platform's 429): the
    retry is not sooner, whatever the backoff says."""


class Transport(Protocol):
    """Delivers messages; `send` yields one result per message, as it goes."""

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]: ...

    def close(self) -> None: ...


def dot_stuffed(data: bytes) -> bytes:
    """`data` as DATA sends it (RFC 5321 4.5.2): a "." starting a line doubled, then the final
    dot on a line of its own. One `bytes.replace`: smtplib's regex is ten times slower."""
    stuffed = data.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n")


def unstuffed(wire: bytes) -> bytes:
    """The message `dot_stuffed` made `wire` of (for a message ending in CRLF, as all do)."""
    data = wire.removesuffix(b".\r\n")
    if data.startswith(b".."):
        data = data[1:]
    return data.replace(b"\n..", b"\n.")
