"""Streams in pieces: `chunks` cuts a stream into lists of a given size, so memory holds one
list, not the stream; `read_ahead` makes a stream's next items in a thread of its own while
the caller works on the last one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), read as they are consumed."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_END = object()


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """`items`, made by a thread of its own up to `depth` items ahead of the caller.

    For a stream whose items cost Python work (an import's rows, read and checked) consumed by
    a loop that mostly waits on a database: the next items are made while the server works on
    the last. `items` must not share anything with the caller's work but what it yields (no
    session, no connection). An exception raised making an item is raised here, where that
    item would have been; when the caller stops early (an error, a `break`), the thread stops
    at its next item and nothing is left waiting.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(item: object) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the caller, raised there
            put((_END, error))
            return
        put((_END, None))

    thread = threading.Thread(target=make, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, tuple) and len(item) == 2 and item[0] is _END:
                if item[1] is not None:
                    raise item[1]
                return
            yield item
    finally:
        stopped.set()
        thread.join()
