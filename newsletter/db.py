"""The engine, sessions and schema migrations (Alembic, shipped inside the package)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from newsletter.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"

LOCK_TIMEOUT = 30.0
"""Seconds a SQLite unit of work waits for another connection's write lock (the worker's and the
CLI's wait; PostgreSQL waits as long as the server lets it). A web request waits less: see
`lock_timeout`."""

_lock_timeout: ContextVar[float | None] = ContextVar("lock_timeout", default=None)
BUSY_TIMEOUT = "busy_timeout"
"""Where a SQLite connection's `info` keeps the busy timeout it has now, in milliseconds."""

BUSY_SQLSTATES = {
    "55P03",  # lock_not_available: lock_timeout ran out
    "57014",  # query_canceled: statement_timeout ran out (if the operator set one)
    "40P01",  # deadlock_detected: the other transaction went on, this one may simply retry
}


@lru_cache(maxsize=8)
def engine_for(database_url: str) -> Engine:
    """One engine per database address, made once per process."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": LOCK_TIMEOUT})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, record) -> None:
    # WAL lets the web app read while a worker writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    milliseconds = int(LOCK_TIMEOUT * 1000)
    cursor.execute(f"PRAGMA busy_timeout={milliseconds}")
    record.info[BUSY_TIMEOUT] = milliseconds
    cursor.close()


def alembic_config(settings: Settings):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine_for(settings.database_url)
    return config


def upgrade(settings: Settings) -> None:
    """Bring the schema to the newest migration."""
    from alembic import command

    command.upgrade(alembic_config(settings), "head")


def schema_is_current(settings: Settings) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(settings)).get_heads())
    with engine_for(settings.database_url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads


def ensure_schema(settings: Settings) -> None:
    """Migrate on the fly in development; in production say what to run instead."""
    if schema_is_current(settings):
        return
    if settings.env == "production":
        raise ConfigError("the database schema is not up to date: run `newsletter db upgrade`")
    upgrade(settings)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A unit of work: committed when the block ends, rolled back when it raises."""
    factory = sessionmaker(engine_for(settings.database_url), expire_on_commit=False)
    with factory() as session, session.begin():
        _limit_lock_wait(session)
        yield session


@contextmanager
def lock_timeout(seconds: float) -> Iterator[None]:
    """Units of work begun inside the block wait at most `seconds` for a lock another
    connection holds, then raise OperationalError (`is_busy` says so).

    The web app serves every request inside one: a request must answer well before gunicorn's
    timeout kills its worker, while the worker and the CLI may wait longer for a busy database.
    """
    token = _lock_timeout.set(seconds)
    try:
        yield
    finally:
        _lock_timeout.reset(token)


def _limit_lock_wait(session: Session) -> None:
    wait = _lock_timeout.get()
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # The busy timeout stays with the pooled connection: set it whenever this unit of work
        # wants another than the connection has, and only then (no statement for the worker).
        milliseconds = int((wait if wait is not None else LOCK_TIMEOUT) * 1000)
        if connection.info.get(BUSY_TIMEOUT) != milliseconds:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={milliseconds}")
            connection.info[BUSY_TIMEOUT] = milliseconds
    elif wait is not None:
        # SET LOCAL: for this transaction only, so a pooled connection keeps no trace of it.
        connection.execute(
            text("SELECT set_config('lock_timeout', :wait, true)"),
            {"wait": f"{int(wait * 1000)}ms"},
        )


def is_busy(error: DBAPIError) -> bool:
    """Whether a database error means "locked by someone else, try again soon" rather than a
    fault: SQLite's busy timeout, PostgreSQL's lock or statement timeout, a deadlock."""
    sqlite_error = getattr(error.orig, "sqlite_errorname", None)  # SQLITE_BUSY_SNAPSHOT, …
    if sqlite_error is not None:
        return sqlite_error.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return getattr(error.orig, "sqlstate", None) in BUSY_SQLSTATES
