"""Reading the mail that came back to the digest's address: an mbox, or one `.eml` file."""

from __future__ import annotations

import email
import mailbox
from collections.abc import Iterator
from email import policy
from email.message import Message
from pathlib import Path

from newsletter.errors import InvalidInput


def read_messages(path: Path) -> Iterator[tuple[str, Message]]:
    """("<file> message <n>", message) for each message of an mbox or a single `.eml` file."""
    try:
        head = path.read_bytes()[:5]
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it ({error.strerror})") from error
    if not head.startswith(b"From "):
        yield f"{path.name} message 1", _parsed(path.read_bytes())
        return
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for number, key in enumerate(box.iterkeys(), 1):
            yield f"{path.name} message {number}", _parsed(box.get_bytes(key))
    finally:
        box.close()


def _parsed(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=policy.compat32)
