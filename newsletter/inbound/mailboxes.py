"""Reading the mail that came back to the digest's address: an mbox, a Maildir, one `.eml`.

Anyone can write to that address, so every message is read as hostile: within a size, a
nesting depth and a number of parts (below), each in its own guard. A message beyond them, or
one the standard library's parser chokes on, is handed on as unreadable, with the reason a
person needs, and the read goes on to the next: one bad message never stops the rest.
"""

from __future__ import annotations

import email.errors
import hashlib
import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import BinaryIO

from newsletter.errors import InvalidInput

MAX_MESSAGE_BYTES = 5 * 2**20
"""A bounce report returning a whole digest is some 100 KB (digests stay under Gmail's 102 KB
clip) and an unsubscribe request a few KB; parsing holds several copies of a message in
memory, so 5 MB leaves room for any real report and keeps one message from filling the
worker's memory. A bigger message is not parsed at all."""
MAX_DEPTH = 30
"""Real mail nests a few levels (a report > the returned message > alternative > related),
a forward of a forward two more each time. The parser and every walk of a message recurse
once per level, so a message 1,000 levels deep (63 KB, anyone can send it) would exhaust
Python's stack; 30 levels keep every walk far from it."""
MAX_PARTS = 500
"""A report has 3 or 4 parts, the digest it returns 3; mail with hundreds of attachments is
nothing we act on, and 10,000 tiny parts would cost every walk of the message dearly."""
HEAD_BYTES = 64 * 2**10
"""How much of a message too big to read is parsed for its Message-ID (its headers)."""


class UnreadableMessage(InvalidInput):
    """A received message too big, too deeply nested or too many-parted to read."""


PARSER_FAILURES = (
    UnreadableMessage,
    email.errors.MessageError,
    RecursionError,
    MemoryError,
    AssertionError,
    AttributeError,
    IndexError,
    LookupError,
    TypeError,
    UnicodeError,
    ValueError,
)
"""What a hostile or broken message makes parsing or walking it raise (the standard library's
parsers raise more than their own MessageError on bad input: unknown charsets, bad base64,
encoded-words that do not decode)."""


@dataclass(frozen=True)
class Received:
    """One message of a mailbox as read: parsed, or why it could not be."""

    source: str
    """Which message it is, for people: "inbox.mbox message 2"."""
    key: str
    """What tells it apart when the mailbox is read again (`message_key`)."""
    message: Message | None
    """The parsed message; None when it could not be read."""
    problem: str = ""
    """Why it could not be read, for people: "nested deeper than the limit of 30 levels"."""


def read_messages(path: Path) -> Iterator[Received]:
    """Each message of a Maildir (a folder), an mbox or a single `.eml` file, in order; a
    message that cannot be read comes with `problem` set and no message."""
    if path.is_dir():
        yield from _each(path, mailbox.Maildir(path, factory=None, create=False))
        return
    try:
        with path.open("rb") as file:
            head = file.read(5)
            if not head.startswith(b"From "):
                file.seek(0)
                yield _read(f"{path.name} message 1", file)
                return
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it ({error.strerror})") from error
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        box.lock()  # as the mail server locks it: no message is read half-delivered
    except (OSError, mailbox.ExternalClashError):
        pass  # read-only to us: read as it is (a Maildir never needs a lock)
    yield from _each(path, box)


def message_key(message: Message) -> str:
    """What tells a message apart when a mailbox is read again: its Message-ID, or a hash of
    its bytes when it has none."""
    message_id = " ".join(str(message.get("Message-ID", "")).split())
    if message_id:
        return message_id[:255]
    try:
        for _part in parts_of(message):  # writing it out recurses: only within the limits
            pass
        data = message.as_bytes()
    except PARSER_FAILURES:  # too broken or too deep to write out: its headers
        data = repr(message.items()).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parts_of(message: Message) -> Iterator[Message]:
    """Every part of a message, itself first, in `Message.walk()`'s order, without recursion;
    UnreadableMessage beyond MAX_DEPTH or MAX_PARTS (for a message parsed elsewhere)."""
    waiting = [(message, 0)]
    seen = 0
    while waiting:
        part, depth = waiting.pop()
        seen += 1
        _within_limits(depth, seen)
        yield part
        if part.is_multipart():
            waiting.extend((child, depth + 1) for child in reversed(part.get_payload()))


def why_unreadable(error: BaseException) -> str:
    """Why a message could not be read, in words a person reading the report understands."""
    if isinstance(error, UnreadableMessage):
        return str(error)
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    if isinstance(error, MemoryError):
        return "too big to read in memory"
    return f"{type(error).__name__}: {error}"


def _each(path: Path, box: mailbox.Mailbox) -> Iterator[Received]:
    try:
        for number, key in enumerate(sorted(box.iterkeys()), 1):
            source = f"{path.name} message {number}"
            try:
                file = box.get_file(key)
            except KeyError:
                continue  # deleted since the folder was listed (a mail client expunged it)
            except OSError as error:  # this message alone: its file's permissions, say
                yield Received(source, f"file:{key}"[:255], None, _io(error))
                continue
            with file:
                yield _read(source, file)
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read it ({error.strerror})") from error
    finally:
        box.close()  # which unlocks it


def _read(source: str, file: BinaryIO) -> Received:
    """One message from its file, never more of it than MAX_MESSAGE_BYTES (+1, to tell)."""
    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    data = file.read(HEAD_BYTES if size > MAX_MESSAGE_BYTES else MAX_MESSAGE_BYTES + 1)
    if size > MAX_MESSAGE_BYTES or len(data) > MAX_MESSAGE_BYTES:
        size = max(size, len(data))
        limit = MAX_MESSAGE_BYTES // 2**20
        return _not_read(source, data, f"{size / 2**20:.1f} MB, over the limit of {limit} MB")
    try:
        message = _parsed(data)
        return Received(source, message_key(message), message)
    except PARSER_FAILURES as error:
        return _not_read(source, data, why_unreadable(error))


def _not_read(source: str, data: bytes, problem: str) -> Received:
    """A message not read, known by the Message-ID of its headers or the hash of its bytes."""
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(data[:HEAD_BYTES])
        message_id = " ".join(str(headers.get("Message-ID", "")).split())
    except PARSER_FAILURES:
        message_id = ""
    key = message_id[:255] or "sha256:" + hashlib.sha256(data).hexdigest()
    return Received(source, key, None, problem)


def _io(error: OSError) -> str:
    return f"cannot read it ({error.strerror or error})"


def _parsed(data: bytes) -> Message:
    return BytesParser(_BoundedPart, policy=policy.compat32).parsebytes(data)


class _BoundedPart(Message):
    """A message part that refuses a child deeper than MAX_DEPTH or past MAX_PARTS in all.

    The parser attaches each part to its parent the moment it meets the part's headers, and
    recurses into it only after that: refusing there stops a hostile message at its 31st level
    or 501st part, before the parser's own recursion goes any deeper.
    """

    def __init__(self, policy: policy.Policy = policy.compat32) -> None:
        super().__init__(policy)
        self.nesting = 0
        self.parts_so_far = [1]  # shared by every part of one message

    def attach(self, payload: Message) -> None:
        if isinstance(payload, _BoundedPart):
            payload.nesting = self.nesting + 1
            payload.parts_so_far = self.parts_so_far
            self.parts_so_far[0] += 1
            _within_limits(payload.nesting, self.parts_so_far[0])
        super().attach(payload)


def _within_limits(depth: int, parts: int) -> None:
    if depth > MAX_DEPTH:
        raise UnreadableMessage(f"nested deeper than the limit of {MAX_DEPTH} levels")
    if parts > MAX_PARTS:
        raise UnreadableMessage(f"more parts than the limit of {MAX_PARTS}")
