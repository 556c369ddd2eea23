"""Reading the mail that came back to the digest's address: an mbox, a Maildir, one `.eml`."""

from __future__ import annotations

import email
import hashlib
import mailbox
from collections.abc import Iterator
from email import policy
from email.message import Message
from pathlib import Path

from newsletter.errors import InvalidInput


def read_messages(path: Path) -> Iterator[tuple[str, Message]]:
    """("<name> message <n>", message) for each message of a Maildir (a folder), an mbox or a
    single `.eml` file."""
    if path.is_dir():
        yield from _each(path, mailbox.Maildir(path, factory=None, create=False))
        return
    try:
        with path.open("rb") as file:
            head = file.read(5)
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it ({error.strerror})") from error
    if head.startswith(b"From "):
        box = mailbox.mbox(path, factory=None, create=False)
        try:
            box.lock()  # as the mail server locks it: no message is read half-delivered
        except (OSError, mailbox.ExternalClashError):
            pass  # read-only to us: read as it is (a Maildir never needs a lock)
        yield from _each(path, box)
    else:
        yield f"{path.name} message 1", _parsed(path.read_bytes())


def message_key(message: Message) -> str:
    """What tells a message apart when a mailbox is read again: its Message-ID, or a hash of
    its bytes when it has none."""
    message_id = " ".join(str(message.get("Message-ID", "")).split())
    if message_id:
        return message_id[:255]
    try:
        data = message.as_bytes()
    except (LookupError, UnicodeError, ValueError):  # too broken to write out: its headers
        data = repr(message.items()).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _each(path: Path, box: mailbox.Mailbox) -> Iterator[tuple[str, Message]]:
    try:
        for number, key in enumerate(sorted(box.iterkeys()), 1):
            yield f"{path.name} message {number}", _parsed(box.get_bytes(key))
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it ({error.strerror})") from error
    finally:
        box.close()  # which unlocks it


def _parsed(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=policy.compat32)
