"""PostgreSQL's COPY … FROM STDIN with its answer read later: the rows are sent and the COPY
ended, and the client goes on with other work while the server checks and stores them.

psycopg's own `cursor.copy()` waits for the server's answer as the block ends; for an import
that is the time the server takes over the rows' constraints and foreign keys, during which
the client could read and check the next rows. The same `Copy` object formats and sends the
rows here; only the end differs (`_EndedCopy`): the end of the data is sent, and the answer
is looked for and read later (`CopyAnswer`), with libpq's own calls (psycopg's `pq` module).
Nothing else may use the connection in between: libpq allows one statement at a time.
"""

from __future__ import annotations

import select
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.copy import LibpqWriter
from sqlalchemy.exc import DBAPIError


def copy_unanswered(
    driver: psycopg.Connection, statement: str, rows: Iterable[Sequence[Any]]
) -> CopyAnswer:
    """Send the rows by the COPY statement and end it, without waiting for the server's answer
    (`CopyAnswer`). A failure, now or in the answer, raises what SQLAlchemy raises for the same
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
    return CopyAnswer(driver, statement)


class CopyAnswer:
    """The server's answer to a COPY ended by `copy_unanswered`: whether it has come, without
    waiting (`ready`); waiting for it (`wait`); what it is (`read`)."""

    def __init__(self, driver: psycopg.Connection, statement: str) -> None:
        self._driver, self._statement = driver, statement

    def ready(self) -> bool:
        """Whether the answer has come (what the server sent so far is read, none waited for)."""
        pgconn = self._driver.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(self._statement, error) from error
        return not pgconn.is_busy()

    def wait(self) -> None:
        """Wait until the answer has come (it is not read)."""
        while not self.ready():
            _wait(self._driver.pgconn, write=False)

    def read(self) -> None:
        """Read the answer (waiting for it if need be); raise the error the server gives."""
        self.wait()
        pgconn = self._driver.pgconn
        try:
            results = []
            while (result := pgconn.get_result()) is not None:
                results.append(result)
            for result in results:
                if result.status != pq.ExecStatus.COMMAND_OK:
                    encoding = self._driver.info.encoding
                    raise psycopg.errors.error_from_result(result, encoding=encoding)
        except psycopg.Error as error:
            raise _as_sqlalchemy_error(self._statement, error) from error


def _as_sqlalchemy_error(statement: str, error: psycopg.Error) -> DBAPIError:
    return DBAPIError.instance(statement, None, error, psycopg.Error)


class _EndedCopy(LibpqWriter):
    """psycopg's writer of a COPY to the server, whose end sends the end of the data without
    reading the answer (`CopyAnswer` reads it)."""

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:  # the COPY abandoned (psycopg's own end: it tells the server why)
            super().finish(exc)
            return
        pgconn = self.connection.pgconn
        while not pgconn.put_copy_end():  # libpq's buffer full: wait until it can be sent
            _wait(pgconn, write=True)
        while pgconn.flush():
            _wait(pgconn, write=True)


def _wait(pgconn: pq.abc.PGconn, *, write: bool) -> None:
    socket = pgconn.socket
    select.select([] if write else [socket], [socket] if write else [], [])
