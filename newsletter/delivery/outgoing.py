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
    retry_after: float | None = None
    """Seconds the receiver asked us to wait before trying again (a chat platform's 429): the
    retry is not sooner, whatever the backoff says."""


class Transport(Protocol):
    """Delivers messages; `send` yields one result per message, as it goes."""

    def send(self, messages: Iterable[Outgoing]) -> Iterator[SendResult]: ...

    def close(self) -> None: ...
