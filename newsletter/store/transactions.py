"""Writing one item in its own savepoint, so that one failure never undoes the others."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from newsletter.errors import InvalidInput

Written = TypeVar("Written")


def in_savepoint(session: Session, write: Callable[[], Written]) -> Written:
    """`write()` in a savepoint of its own: when the database refuses the record itself (a
    constraint or trigger: IntegrityError; a value it cannot store, PostgreSQL's NUL or one
    too long for its column: DataError), only its writes are undone, the session goes on,
    and InvalidInput says why. So one bad record of an import never stops the rest, and what
    is kept is the same on SQLite and PostgreSQL.

    A failure of the database itself (locked, gone, its disk full: OperationalError and the
    rest) is no verdict on the record, and would be the same for every one: it goes on up,
    to be said once (the CLI) or waited out (the worker), and nothing of the unit is kept."""
    with savepoint(session):
        return write()


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """The block in a savepoint of its own, refused as `in_savepoint` says: for a writer whose
    work does not fit in one call (the import keeps a chunk's savepoint open while it reads
    the next chunk, `subscriber_import._write_chunk`)."""
    try:
        with session.begin_nested():
            yield
    except (IntegrityError, DataError) as error:
        reason = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
        raise InvalidInput(f"the database refused it: {reason}") from error
