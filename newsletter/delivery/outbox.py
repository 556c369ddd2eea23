"""The outbox transport (the default, nothing to set up): each message written as one `.eml`
file, atomically, under a name its Message-ID decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from newsletter.delivery.dkim import DkimSigner, _signed
from newsletter.delivery.outgoing import Outgoing, SendResult


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
