"""The send journal: every message the relay accepted, noted at once where noting costs no SQL.

Successes reach the database in groups (one UPDATE for up to NEWSLETTER_RECORD_EVERY of
them), which keeps a send at a few statements per thousand messages. A sender that dies loses
the group it had not written yet, and when their lease ends those rows would be sent again. So
each accepted message is also noted here, after the relay's reply to DATA and before the next
message starts, and a sender that claims rows looks them up here before it sends any: those
found went out before their sender died, and are marked sent instead of being sent again. What
a sender that dies can still send twice is the one message it had in flight (accepted by the
relay, not yet noted).

Where the journal lives follows where the senders meet:

- NEWSLETTER_REDIS_URL set (workers on any number of machines, and `newsletter send` beside
  them): a hash per digest in Redis, `newsletter:send-journal:<digest id>`, delivery id → the
  relay's reply; one HSET per message, which every sender sees.
- Otherwise (the embedded queue's workers and `newsletter send`, on one machine): a file per
  sending thread in NEWSLETTER_VAR_DIR/send-journal, one appended line per message (O_APPEND,
  one write, no fsync), which every sender on the machine reads. Its name says the digest, the
  sender's pid namespace and the sender (host, pid, thread).

A sender drops its own entries once its group is in the database; entries found by a sender
that claimed their rows are dropped once it has marked them sent; a file whose process is gone
is marked sent whole and removed by the next sender that looks. Gone means a process of this
host and pid namespace that has ended (`heartbeat.process_is_gone`): a sender in another
container sharing the folder counts as alive, whatever its pid names here.

What survives what: a process killed (SIGKILL, out of memory) leaves its journal, in Redis or
in the kernel's page cache, which outlives the process. A machine that crashes may lose a
file's last lines (an fsync per message would cost more than sending it), and a Redis that
restarts without persistence loses its journals: then, as without a journal, up to
NEWSLETTER_RECORD_EVERY messages per sending thread may go twice.

A journal that cannot be written or read raises what Redis or the file system said
(`redis.RedisError`, `OSError`), as every other use of them does: a worker waits for Redis to
come back (`outages`), the command line says what is wrong in words.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote

import redis

from newsletter.config import Settings
from newsletter.processes import pid_namespace, process_is_gone

log = logging.getLogger(__name__)

FOLDER = "send-journal"
"""The file journals' folder, under NEWSLETTER_VAR_DIR."""
SUFFIX = ".sent"
KEEP_SECONDS = 7 * 24 * 3600
"""How long a digest's Redis journal outlives its last use, taking with it what a sender that
died between writing its group and dropping its entries left behind."""


class SendJournal(Protocol):
    """Where a sender notes each accepted message until the database has it."""

    def record(self, delivery_id: int, reply: str) -> None:
        """Note one message the relay accepted, with its reply (or raise)."""

    def written(self, delivery_ids: Collection[int]) -> None:
        """This sender's entries for these rows are in the database now: drop them."""

    def recorded_among(self, delivery_ids: Collection[int]) -> dict[int, str]:
        """The entries, any sender's, for these rows, and those a sender that is gone left:
        messages accepted that the database may not know of (or raise)."""

    def folded(self, delivery_ids: Collection[int]) -> None:
        """`recorded_among`'s entries are marked sent in the database now: drop them."""

    def close(self) -> None:
        """A batch is over: let go of what the journal holds open, and of what it holds for
        this sender once its sends are all written."""


def journal_for(settings: Settings, digest_id: int, worker: str) -> SendJournal:
    """The journal every sender of this deployment shares: Redis if set, else this machine's."""
    if settings.redis_url is not None:
        return RedisJournal(settings.redis_url.get_secret_value(), digest_id)
    return FileJournal(settings.var_dir / FOLDER, digest_id, worker)


# ---------------------------------------------------------------- Redis


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # One connection pool per process; a send waits for Redis no longer than for a relay.
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


class RedisJournal:
    """A digest's journal in Redis: one hash, delivery id → reply, shared by all its senders.

    A note is one HSET written to Redis's socket; its reply is read once it has come (looked
    for once `READ_EVERY` replies are unread, never waiting for them), and all of them before
    any other use of the journal and when the batch ends, so a sender does not wait a round
    trip per message, nor make a system call a message to look for replies. Once
    written, the command reaches Redis whatever becomes of this process: a process killed
    has its socket closed by the kernel, which has handed what was written to Redis (on the
    same machine, at once; over a network, unless the process dies within the moment it is
    in flight). A note that failed (Redis gone, or refusing writes) raises at a later note
    (Redis gone: at the next write; a refusal: when its reply is read, once `READ_EVERY`
    notes are unread and it has come in), the end of the batch, or its next use, with the
    same effect: the batch ends and its sends are written."""

    READ_EVERY = 32
    """Notes written before their replies are looked for. Looking at every note cost a system
    call a message, as much as the note itself: 25 µs of a sender's CPU a note, against 12 µs
    looking once in 32 (50,000 notes to this machine's Redis). The price: once Redis starts
    refusing notes, up to this many more messages may go before the batch ends, and a sender
    killed in that moment leaves them unnoted, to be sent again after its lease."""

    def __init__(self, url: str, digest_id: int) -> None:
        self.url = url
        self.key = f"newsletter:send-journal:{digest_id}"
        self._connection: redis.Connection | None = None
        """The connection notes are written on while replies are unread; held until then."""
        self._unread = 0

    def record(self, delivery_id: int, reply: str) -> None:
        if self._connection is None:
            self._connection = _client(self.url).connection_pool.get_connection()
        connection = self._connection
        try:
            if self._unread >= self.READ_EVERY:
                while self._unread and connection.can_read(timeout=0):
                    self._read_one()
            connection.send_command("HSET", self.key, str(delivery_id), reply)
        except BaseException:
            self._let_go(broken=True)
            raise
        self._unread += 1

    def written(self, delivery_ids: Collection[int]) -> None:
        self.close()
        self._drop(delivery_ids)

    def recorded_among(self, delivery_ids: Collection[int]) -> dict[int, str]:
        self.close()
        ids = list(delivery_ids)
        if not ids:
            return {}
        pipe = _client(self.url).pipeline(transaction=False)
        pipe.hmget(self.key, ids)
        pipe.expire(self.key, KEEP_SECONDS)
        replies, _expiry = pipe.execute()
        return {key: reply.decode() for key, reply in zip(ids, replies, strict=True) if reply}

    def folded(self, delivery_ids: Collection[int]) -> None:
        self.close()
        self._drop(delivery_ids)

    def close(self) -> None:
        """Every note's reply read (raising what Redis said of any), the connection let go."""
        if self._connection is None:
            return
        try:
            while self._unread:
                self._read_one()
        except BaseException:
            self._let_go(broken=True)
            raise
        self._let_go()

    def _read_one(self) -> None:
        self._unread -= 1
        self._connection.read_response()

    def _let_go(self, broken: bool = False) -> None:
        connection, self._connection, self._unread = self._connection, None, 0
        if broken:
            connection.disconnect()  # what was said on it is unknown: a fresh one next time
        _client(self.url).connection_pool.release(connection)

    def _drop(self, delivery_ids: Collection[int]) -> None:
        if not delivery_ids:
            return
        try:
            pipe = _client(self.url).pipeline(transaction=False)
            pipe.hdel(self.key, *delivery_ids)
            pipe.expire(self.key, KEEP_SECONDS)
            pipe.execute()
        except redis.RedisError as error:
            # Entries left are true (those messages went) and the database has them: harmless.
            log.warning("send journal: entries not dropped from Redis: %s", error)


# ---------------------------------------------------------------- a file per sending thread


class FileJournal:
    """This sender's journal: a file of lines `<delivery id> <reply as JSON>`, emptied when its
    group is written, removed when its batch ends with its group written; the other files of
    the digest are the other senders' on this machine.

    `namespace` is the sender's pid namespace (this process's unless told), in the file's name
    so that another sender can tell whether the pid in it can be looked up from where it runs.
    """

    def __init__(
        self, folder: Path, digest_id: int, worker: str, namespace: int | None = None
    ) -> None:
        self.folder = folder
        self.prefix = f"{digest_id}@"
        namespace = pid_namespace() if namespace is None else namespace
        self.path = folder / f"{self.prefix}{namespace}@{quote(worker, safe='')}{SUFFIX}"
        self._fd: int | None = None
        self._unwritten = 0
        self._gone: list[Path] = []

    def record(self, delivery_id: int, reply: str) -> None:
        line = f"{delivery_id} {json.dumps(reply)}\n".encode()
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # One write of one short line: whole in the page cache when it returns, so a process
        # killed right after leaves it for the others to read.
        os.write(self._fd, line)
        self._unwritten += 1

    def written(self, delivery_ids: Collection[int]) -> None:
        # The file holds exactly the sends since the last write, which are these (closed after
        # a batch that could not write them, it is emptied by name).
        if self._fd is None and not self._unwritten:
            return
        try:
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
            else:
                os.truncate(self.path, 0)
        except FileNotFoundError:
            pass  # nothing of this sender's left to empty
        except OSError as error:
            log.warning("send journal: %s not emptied: %s", self.path, error)
            return
        self._unwritten = 0

    def recorded_among(self, delivery_ids: Collection[int]) -> dict[int, str]:
        wanted = set(delivery_ids)
        found: dict[int, str] = {}
        self._gone = []
        try:
            paths = [
                path
                for path in self.folder.iterdir()
                if path.name.startswith(self.prefix) and path.name.endswith(SUFFIX)
            ]
        except FileNotFoundError:  # no sender of this machine has noted anything yet
            return found
        for path in paths:
            entries = _read_entries(path)
            gone = path != self.path and _writer_gone(path.name[len(self.prefix) : -len(SUFFIX)])
            if gone:
                found.update(entries)
                self._gone.append(path)
            else:
                found.update((key, reply) for key, reply in entries.items() if key in wanted)
        return found

    def folded(self, delivery_ids: Collection[int]) -> None:
        # A live sender's file is its own to empty; a gone one's is all in the database now.
        for path in self._gone:
            path.unlink(missing_ok=True)
        self._gone = []

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._unwritten:  # else what is not in the database yet stays noted
            self.path.unlink(missing_ok=True)


def _read_entries(path: Path) -> dict[int, str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # its sender finished (or another sender folded it) meanwhile
        return {}
    entries = {}
    for line in data.split(b"\n")[:-1]:  # the last piece is empty, or a line being written
        key, _, reply = line.partition(b" ")
        try:
            entries[int(key)] = json.loads(reply)
        except ValueError:
            continue
    return entries


def _writer_gone(name: str) -> bool:
    """Whether the sender that wrote a journal (`<pid namespace>@<quoted worker>`) is a process
    of this machine and pid namespace that has ended. Others (a folder shared between machines
    or containers, a name of another form) count as alive: their files are read, never taken
    whole."""
    namespace, _, quoted_worker = name.partition("@")
    process, _, _thread = unquote(quoted_worker).rpartition(":")
    host, _, pid = process.rpartition(":")  # as `delivery.worker_name` makes it
    if not namespace.isdigit() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return process_is_gone(host, int(pid), int(namespace))
