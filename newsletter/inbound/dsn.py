"""Reading delivery status notifications (RFC 3464): who failed, how, and for which message.

A DSN is a `multipart/report; report-type=delivery-status` message whose
`message/delivery-status` part holds one block of fields per recipient (Final-Recipient,
Action, Status, Diagnostic-Code), usually followed by the returned message or its headers
(`message/rfc822`, `text/rfc822-headers`), whose Message-ID says which message failed.
Reading them needs nothing but the standard library and `mailboxes`' bounded walk of parts;
what a bounce does to a subscriber is `delivery.bounces`.
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import HeaderParser

from newsletter.delivery.bounces import STATUS, Bounce
from newsletter.inbound.mailboxes import parts_of


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
