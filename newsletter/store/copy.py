"""PostgreSQL's COPY … FROM STDIN with its answer read later: the rows are sent and the COPY
ended, and the client goes on with other work while the server checks and stores them.

psycopg's own `cursor.copy()` waits for the server's answer as the block ends; for an import
that is the time the server takes over the rows' constraints and foreign keys, during which
the client could read and check the next rows. The same `Copy` object formats and sends the
rows here; only the end differs (`_EndedCopy`): the end of the data is sent, and the answer
is read by the function returned, with libpq's own calls (psycopg's `pq` module). Nothing
else may use the connection in between: libpq allows one statement at a time.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.copy import LibpqWriter
from sqlalchemy.exc import DBAPIError


def copy_unanswered(
    driver: psycopg.Connection, statement: str, rows: Iterable[Sequence[Any]]
) -> Callable[[], None]:
    """Send the rows by the COPY statement and end it; what is returned waits for the server's
    answer. A failure (now or in the answer) raises what SQLAlchemy raises for the same
    failure of an INSERT (IntegrityError, DataError, ...: `transactions.in_savepoint` knows
    them)."""
    try:
        with driver.cursor() as cursor:
            writer = _EndedCopy(cursor)
            with cursor.copy(statement, writer=writer) as copy:
                for row in rows:
                    copy.write_row(row)
    except psycopg.Error as error:
        raise _as_sqlalchemy_error(statement, error) from error

    def answered() -> None:
        try:
            writer.answer()
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(statement, error) from error

    return answered


def _as_sqlalchemy_error(statement: str, error: psycopg.Error) -> DBAPIError:
    return DBAPIError.instance(statement, None, error, psycopg.Error)


class _EndedCopy(LibpqWriter):
    """psycopg's writer of a COPY to the server, whose end sends the end of the data without
    reading the answer (`answer` reads it)."""

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:  # the COPY abandoned (psycopg's own end: it tells the server why)
            super().finish(exc)
            return
        pgconn = self.connection.pgconn
        while not pgconn.put_copy_end():  # libpq's buffer full: wait until it can be sent
            _wait(pgconn, write=True)
        while pgconn.flush():
            _wait(pgconn, write=True)

    def answer(self) -> None:
        """Wait for the server's answer to the COPY; raise the error it gives."""
        pgconn = self.connection.pgconn
        pgconn.consume_input()
        while pgconn.is_busy():
            _wait(pgconn, write=False)
            pgconn.consume_input()
        results = []
        while (result := pgconn.get_result()) is not None:
            results.append(result)
        for result in results:
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(
                    result, encoding=self.connection.info.encoding
                )


def _wait(pgconn: pq.abc.PGconn, *, write: bool) -> None:
    """Until the connection's socket can be written (or read): a selector, which takes any
    descriptor (select() refuses those from 1024 on, which a long-lived process may have)."""
    with selectors.DefaultSelector() as selector:
        selector.register(pgconn.socket, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        selector.select()
