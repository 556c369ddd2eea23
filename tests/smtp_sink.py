"""Postfix's smtp-sink on loopback for tests: a fast C SMTP server with faults on demand.

    with SmtpSink("-r", "DATA") as sink:         # 450 4.3.0 at DATA
        transport = SMTPTransport(sink.url)
        ...
        sink.replace()                           # same port, now accepting everything
        assert [m.recipient for m in sink.messages()] == ["ada@example.org"]

The options are smtp-sink's own (run it with no arguments for the list). Those the tests use:
`-r DATA` soft-rejects at DATA (450 4.3.0), `-f RCPT` hard-rejects at RCPT (500 5.3.0, or the
reply given with `-B`), `-q .` closes the connection after the message's final dot without a
reply, having kept the message (a relay that died between queueing and answering). smtp-sink
cannot alternate (reject once, then accept): `replace()` restarts it on the same port with
other options, which a client sees as a dropped connection followed by a new server.

Every accepted message is dumped to a file of its own (`-d`), written once the final dot has
arrived, so a message cut off midway is never counted (the file is opened, empty, at MAIL:
an empty one is no message).

The programs come from Debian's postfix package, unpacked by `../shared/tools/postfix-tools`;
where that script is missing or fails, tests skip with the reason (and fail when CI is set).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tests.helpers import free_port, skip_or_fail_in_ci

HOST = "127.0.0.1"
POSTFIX_TOOLS = Path(__file__).resolve().parents[2] / "shared/tools/postfix-tools"

_RCPT = re.compile(rb"^X-Rcpt-Args: <([^>]*)>", re.MULTILINE)
_MESSAGE_ID = re.compile(rb"^Message-ID: *(<[^>]*>)", re.MULTILINE | re.IGNORECASE)


@lru_cache(maxsize=1)
def _bin_folder() -> Path | str:
    """The folder holding smtp-sink, or why there is none (cached: the script unpacks once)."""
    if not POSTFIX_TOOLS.is_file():
        return f"{POSTFIX_TOOLS} is missing (it lives beside the repository, in ../shared)"
    try:
        done = subprocess.run(
            [str(POSTFIX_TOOLS)], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{POSTFIX_TOOLS} did not run: {error}"
    folder = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if done.returncode != 0 or folder is None or not (folder / "smtp-sink").is_file():
        return f"{POSTFIX_TOOLS} found no smtp-sink (exit {done.returncode}): {done.stderr[-500:]}"
    return folder


def smtp_sink_program() -> Path:
    """The smtp-sink launcher; skips (or fails in CI) when it cannot be had."""
    folder = _bin_folder()
    if isinstance(folder, str):
        skip_or_fail_in_ci(folder)
    return Path(folder) / "smtp-sink"


class PortTaken(RuntimeError):
    """smtp-sink could not listen: the port is in use."""


@dataclass(frozen=True)
class SunkMessage:
    """One message smtp-sink accepted: its envelope recipient and its Message-ID header."""

    recipient: str
    message_id: str
    path: Path


class SmtpSink:
    """smtp-sink on 127.0.0.1 and a free port, dumping what it accepts; use with `with`."""

    def __init__(self, *options: str, port: int | None = None) -> None:
        self.program = smtp_sink_program()
        self.options = options
        self.fixed_port = port is not None
        self.port = port or free_port()
        # smtp-sink refuses to run as root without -u; as nobody it must reach the dump folder.
        self.dumps = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
        self.dumps.chmod(0o777)  # noqa: S103 (a throwaway folder the unprivileged sink writes)
        self.log = self.dumps.with_suffix(".log")
        self.process: subprocess.Popen | None = None
        self.starts = 0

    # ------------------------------------------------------------------ running it

    def start(self) -> SmtpSink:
        for _attempt in range(3):
            try:
                return self._start()
            except PortTaken:
                if self.fixed_port:
                    raise
                self.port = free_port()  # someone took the free port meanwhile: another one
        return self._start()

    def _start(self) -> SmtpSink:
        command = [str(self.program)]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        self.starts += 1
        template = str(self.dumps / f"{self.starts:02d}-%H%M%S.")
        command += [*self.options, "-d", template, f"{HOST}:{self.port}", "256"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                output = self.output
                error = PortTaken if "address already in use" in output.lower() else RuntimeError
                raise error(f"smtp-sink exited ({self.process.returncode}): {output[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"smtp-sink did not listen on {self.port} within 10 s: {self.output}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def replace(self, *options: str) -> SmtpSink:
        """Another smtp-sink on the same port, with these options (none: accept everything).

        Messages dumped so far stay; connections to the old one are cut.
        """
        self.stop()
        self.options = options
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dumps, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ what it saw

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def count(self) -> int:
        """How many messages were accepted so far (cheap enough to poll)."""
        return len(self._written())

    def messages(self) -> list[SunkMessage]:
        """Every accepted message, in the order the sink wrote them (to the second).

        smtp-sink opens a transaction's dump at MAIL and writes it at the final dot: a sink
        stopped in between (a pipelining client has sent the next MAIL, RCPT and DATA before
        reading the last reply) leaves an empty file, which is no message."""
        found = []
        written = self._written()
        for path in sorted(written, key=lambda path: (written[path].st_mtime_ns, path.name)):
            with path.open("rb") as handle:
                head = handle.read(16_384).split(b"\n\n", 1)[0]
            recipient = _RCPT.search(head)
            message_id = _MESSAGE_ID.search(head)
            found.append(
                SunkMessage(
                    recipient.group(1).decode() if recipient else "",
                    message_id.group(1).decode() if message_id else "",
                    path,
                )
            )
        return found

    def _written(self) -> dict[Path, os.stat_result]:
        """The dumps with something in them, and what `stat` said of each. A dump can go
        between the listing and its `stat`: smtp-sink removes a transaction's file when its
        client drops before the final dot (a test killing a sender in mid-message)."""
        written = {}
        for entry in os.scandir(self.dumps):
            try:
                status = entry.stat()
            except FileNotFoundError:
                continue
            if status.st_size:
                written[Path(entry.path)] = status
        return written
