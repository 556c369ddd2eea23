"""Reading delivery status notifications (RFC 3464) and deciding what a bounce means.

A DSN is a `multipart/report; report-type=delivery-status` message whose
`message/delivery-status` part holds one block of fields per recipient (Final-Recipient,
Action, Status, Diagnostic-Code), usually followed by the returned message or its headers
(`message/rfc822`, `text/rfc822-headers`), whose Message-ID says which message failed.
Reading them needs nothing but the standard library and `mailboxes`' bounded walk of parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import HeaderParser

from newsletter.mailboxes import parts_of

STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
HARD_FAILURES_BEFORE_BOUNCED = 3
"""Hard failures other than an unknown address that mark a subscriber bounced."""


@dataclass(frozen=True)
class Bounce:
    """One recipient's outcome in a DSN (or an SMTP reply we classified the same way)."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""
    source: str = ""
    message_id: str = ""
    """The Message-ID of the message that failed, from the returned headers; "" if none."""

    @property
    def is_hard(self) -> bool:
        """A permanent failure (5.x.x): retrying will not help."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def is_unknown_user(self) -> bool:
        """5.1.x: the address does not exist (bad mailbox, bad domain): bounced at once."""
        return self.is_hard and self.status.startswith("5.1.")


def classify(bounce: Bounce, hard_failures_so_far: int) -> str:
    """What a bounce does to a subscriber: "bounced", "counted" (a hard failure) or "ignored"."""
    if bounce.is_unknown_user:
        return "bounced"
    if bounce.is_hard:
        return "bounced" if hard_failures_so_far + 1 >= HARD_FAILURES_BEFORE_BOUNCED else "counted"
    return "ignored"


def bounces_in(message: Message, source: str = "") -> list[Bounce]:
    """The per-recipient outcomes of one DSN; [] when the message is not a DSN."""
    found = []
    returned = returned_message_id(message)
    for part in parts_of(message):
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, str):  # some agents send the fields as one text block
            blocks = [_headers(block) for block in re.split(r"\r?\n\r?\n", blocks)]
        for block in blocks[1:]:  # the first block describes the message, not a recipient
            bounce = _bounce_from_fields(block, source, returned)
            if bounce is not None:
                found.append(bounce)
    return found


def returned_message_id(message: Message) -> str:
    """The Message-ID of the message a DSN returns (whole, or its headers alone); "" if none."""
    for part in parts_of(message):
        kind = part.get_content_type()
        if kind == "message/rfc822" and isinstance(part.get_payload(), list):
            headers = part.get_payload()[0]
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            headers = _headers(str(part.get_payload()))
        else:
            continue
        found = "".join(_field(headers, "Message-ID").split())
        if found:
            return found if found.startswith("<") else f"<{found}>"
    return ""


def _bounce_from_fields(block: Message, source: str, message_id: str = "") -> Bounce | None:
    recipient = _address(_field(block, "Final-Recipient") or _field(block, "Original-Recipient"))
    status = _field(block, "Status").strip().split(" ")[0]
    if not recipient or not STATUS.match(status):
        return None
    diagnostic = " ".join(_field(block, "Diagnostic-Code").split())
    return Bounce(
        recipient=recipient,
        action=_field(block, "Action").strip().lower(),
        status=status,
        diagnostic=diagnostic.split(";", 1)[-1].strip(),
        source=source,
        message_id=message_id,
    )


def _headers(text: str) -> Message:
    # Headers only: whatever follows them stays text, never parsed into parts, so a report
    # cannot smuggle a message nested past the mailbox's limits inside a block of fields.
    return HeaderParser(policy=policy.compat32).parsestr(text)


def _field(block: Message, name: str) -> str:
    """A field's text; "" when absent. (A value with 8-bit bytes is a `Header`, not a str.)"""
    value = block.get(name)
    return "" if value is None else str(value)


def _address(field: str) -> str:
    """`rfc822; Ada@Example.org` → `Ada@Example.org`."""
    value = field.split(";", 1)[-1].strip().strip("<>")
    return value if "@" in value else ""


def bounce_from_reply(recipient: str, code: int, text: str) -> Bounce:
    """An SMTP reply classified like a DSN: `550 5.1.1 no such user` → status 5.1.1."""
    enhanced = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", text)
    status = enhanced.group(1) if enhanced else f"{str(code)[0]}.0.0"
    action = "failed" if code >= 500 else "delayed"
    return Bounce(recipient, action, status, f"{code} {text}".strip(), "smtp")
