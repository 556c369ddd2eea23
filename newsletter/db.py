"""The engine, sessions and schema migrations (Alembic, shipped inside the package)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings, shown_setting
from newsletter.errors import ConfigError, DatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"

LOCK_TIMEOUT = 30.0
"""Seconds a SQLite unit of work waits for another connection's write lock (the worker's and the
CLI's wait; PostgreSQL waits as long as the server lets it). A web request waits less: see
`lock_timeout`."""

_lock_timeout: ContextVar[float | None] = ContextVar("lock_timeout", default=None)
BUSY_TIMEOUT = "busy_timeout"
"""Where a SQLite connection's `info` keeps the busy timeout it has now, in milliseconds."""
LOCK_TIMEOUT_SET = "lock_timeout"
"""Where a PostgreSQL connection's `info` keeps the lock_timeout it was given (`SET`), absent
(None) while it has the server's."""

PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may sit unused and still be handed out without a ping
(see `_ping_when_idle`): one used this recently was working a moment ago."""
IDLE_SINCE = "idle_since"
"""Where a PostgreSQL connection's record keeps when it was made or last given back."""

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
            check_sqlite_file(Path(url.database), database_url)
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": LOCK_TIMEOUT})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that sat in the pool for more than
    `PING_AFTER_IDLE` only: a connection given back moments ago is handed out again without a
    round trip, which under a burst of web requests was one of every request's few. One found
    dead makes the pool drop every connection it holds, as `pool_pre_ping` does."""
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def note_idle(_dbapi_connection, record) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection, record, _proxy) -> None:
        if time.monotonic() - record.info.get(IDLE_SINCE, 0.0) < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error  # a new connection is made instead
            raise


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

    _revisions(settings)  # DatabaseError for a schema newer than this program
    command.upgrade(alembic_config(settings), "head")


def schema_is_current(settings: Settings) -> bool:
    current, heads = _revisions(settings)
    return current == heads


def _revisions(settings: Settings) -> tuple[set[str], set[str]]:
    """The database's schema revisions and this program's newest ones. DatabaseError when the
    database has one this program does not know: a newer version migrated it, and this one
    can neither use nor migrate it (Alembic would only say "Can't locate revision")."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(settings))
    with engine_for(settings.database_url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    unknown = current - {script.revision for script in scripts.walk_revisions()}
    if unknown:
        raise DatabaseError(
            f"{shown_setting('database_url', settings.database_url)}: this database was"
            f" migrated by a newer version of this program (schema {', '.join(sorted(unknown))},"
            " which this one does not know): upgrade the program"
        )
    return current, set(scripts.get_heads())


NEWEST_MIGRATION = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)


def _at_newest_migration(settings: Settings) -> bool:
    """True when the database's one revision is that of the newest migration file (they are
    numbered, one after the other): what every command's start asks, answered with one SELECT
    instead of Alembic reading every migration. False sends the question to Alembic."""
    newest = max((MIGRATIONS / "versions").glob("[0-9]*.py"), default=None)
    found = NEWEST_MIGRATION.search(newest.read_text(encoding="utf-8")) if newest else None
    if found is None:
        return False
    try:
        with engine_for(settings.database_url).connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError as error:
        if "alembic_version" in str(error.orig):
            return False  # not made yet: Alembic makes it
        raise  # unreachable, say: asking again would only wait as long again
    return [row[0] for row in rows] == [found.group(1)]


def ensure_schema(settings: Settings) -> None:
    """Migrate on the fly in development; in production say what to run instead."""
    if _at_newest_migration(settings) or schema_is_current(settings):
        return
    if settings.env == "production":
        raise ConfigError("the database schema is not up to date: run `newsletter db upgrade`")
    upgrade(settings)


@lru_cache(maxsize=8)
def _sessions(engine: Engine) -> sessionmaker:
    # One factory per engine: sessionmaker() makes a Session subclass, and SQLAlchemy's event
    # registry follows each; made per unit of work it cost a web request ~1 ms of CPU.
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A unit of work: committed when the block ends, rolled back when it raises."""
    with _sessions(engine_for(settings.database_url))() as session, session.begin():
        _limit_lock_wait(session.connection())
        yield session


@contextmanager
def connection_scope(settings: Settings) -> Iterator[Connection]:
    """A Core connection, for work that loads no ORM object and owns its transactions (the
    one-click unsubscribe): no Session to make and tear down. Its lock wait is set (see
    `lock_timeout`) and no transaction is begun: what is written is committed by the code that
    writes it (`Connection.begin()`), or is one statement run in autocommit."""
    with engine_for(settings.database_url).connect() as connection:
        _limit_lock_wait(connection)
        if connection.in_transaction():  # SQLite's PRAGMA began one
            connection.commit()
        yield connection


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


def _limit_lock_wait(connection: Connection) -> None:
    wait = _lock_timeout.get()
    if connection.dialect.name == "sqlite":
        # The busy timeout stays with the pooled connection: set it whenever this unit of work
        # wants another than the connection has, and only then (no statement for the worker).
        milliseconds = int((wait if wait is not None else LOCK_TIMEOUT) * 1000)
        if connection.info.get(BUSY_TIMEOUT) != milliseconds:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={milliseconds}")
            connection.info[BUSY_TIMEOUT] = milliseconds
    else:
        _postgresql_lock_timeout(connection, None if wait is None else f"{int(wait * 1000)}ms")


_SET_LOCAL_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :wait, true)")


def _postgresql_lock_timeout(connection: Connection, wanted: str | None) -> None:
    """PostgreSQL's lock_timeout of this pooled connection made `wanted` (None: the server's
    own, or the one the database address's options give), and only when it has another.

    Set for the session, once per connection and value, rather than with `SET LOCAL` in each
    transaction: a web request's unit of work saved a round trip (the web app's connections
    always want the same wait). It is sent before the unit of work's transaction begins (the
    driver begins it with the first statement), in autocommit as SQLAlchemy's own ping does,
    so no rollback of that transaction can undo it behind `connection.info`'s back.
    """
    if connection.info.get(LOCK_TIMEOUT_SET) == wanted:
        return
    driver = connection.connection.driver_connection
    statement = "RESET lock_timeout" if wanted is None else f"SET lock_timeout = '{wanted}'"
    if driver.info.transaction_status.name != "IDLE":
        # Begun already (not at a unit of work's start): for this transaction alone.
        if wanted is not None:
            connection.execute(_SET_LOCAL_LOCK_TIMEOUT, {"wait": wanted})
        return
    driver.autocommit = True
    try:
        driver.execute(statement)
    finally:
        driver.autocommit = False
    connection.info[LOCK_TIMEOUT_SET] = wanted


def is_busy(error: DBAPIError) -> bool:
    """Whether a database error means "locked by someone else, try again soon" rather than a
    fault: SQLite's busy timeout, PostgreSQL's lock or statement timeout, a deadlock."""
    sqlite_error = getattr(error.orig, "sqlite_errorname", None)  # SQLITE_BUSY_SNAPSHOT, …
    if sqlite_error is not None:
        return sqlite_error.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return getattr(error.orig, "sqlstate", None) in BUSY_SQLSTATES


# ------------------------------------------------------------------ failures, in words

SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, database_url: str) -> None:
    """DatabaseError if a file is at `path` that is no SQLite database. One of zero bytes (a
    full disk, a failed copy or restore leaves them) SQLite would take for a new database and
    fill with empty tables, hiding the loss: it is refused, named, never written over. (Our
    own connections write the header as they open, with `journal_mode=WAL`, so a database being
    made is empty only for that instant.)"""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except (FileNotFoundError, NotADirectoryError):
        return  # a new database: made on first use
    except OSError:
        return  # unreadable: SQLite's own error says so, in words (see `describe_error`)
    setting = shown_setting("database_url", database_url)
    if not header:
        raise DatabaseError(
            f"{setting}: {path} is empty (0 bytes), so it holds no database; restore it from a"
            " backup, or delete it to start with an empty database"
        )
    if header != SQLITE_HEADER:
        raise DatabaseError(
            f"{setting}: {path} is not a SQLite database (it does not begin like one); point"
            " the URL at the database file, or restore that file from a backup"
        )


SQLITE_ADVICE = {
    # SQLite's error names (Python 3.11+), a few of them with their extended codes' prefix.
    "SQLITE_NOTADB": "restore it from a backup, or move it away to start with an empty database",
    "SQLITE_CORRUPT": "restore it from a backup (`sqlite3 {path} .recover` saves what it can)",
    "SQLITE_CANTOPEN": "check that its folder exists and that this user may write there",
    "SQLITE_READONLY": "let this user write the file and its folder",
    "SQLITE_PERM": "let this user write the file and its folder",
    "SQLITE_FULL": "free some space on its disk",
    "SQLITE_IOERR": "check the disk and the file system it is on",
    "SQLITE_BUSY": "another command or worker held it too long: try again",
    "SQLITE_LOCKED": "another command or worker held it too long: try again",
}
POSTGRES_ADVICE = [
    # psycopg gives no SQLSTATE for a failed connection: its words are all there is.
    (r'database "(?P<name>[^"]*)" does not exist', "create it ({createdb}), or correct its name"),
    (
        r"password authentication failed|role \"[^\"]*\" does not exist|no pg_hba\.conf entry",
        "check the user and password in the URL (and pg_hba.conf on the server)",
    ),
    (
        r"Connection refused|timeout expired|No route to host|resolve host|Name or service",
        "start PostgreSQL there, or correct the host and port in the URL",
    ),
    (r"No space left|disk full|could not extend file", "free some space on the server's disk"),
]


def describe_error(error: DBAPIError, database_url: str) -> DatabaseError:
    """A database failure as one line: the setting, what failed, what the database said, and
    what to do. The URL's password is masked; the driver's words never hold it."""
    url = make_url(database_url)
    setting = shown_setting("database_url", database_url)
    said = _driver_words(error)
    if url.get_backend_name() == "sqlite":
        advice = sqlite_advice(error.orig, url.database)
        return DatabaseError(f"{setting}: cannot use {url.database} ({said}); {advice}")
    where = f"PostgreSQL at {server_where(url)}"
    for pattern, advice in POSTGRES_ADVICE:
        if re.search(pattern, said):
            advice = advice.format(createdb=_createdb(url))
            return DatabaseError(f"{setting}: cannot use {where} ({said}); {advice}")
    return DatabaseError(f"{setting}: cannot use {where} ({said})")


def sqlite_advice(error: BaseException | None, path: str | Path | None) -> str:
    """What to do about SQLite's `error` on the file at `path`, told by SQLite's error name: the
    database's file, or the queue's."""
    name = getattr(error, "sqlite_errorname", "") or ""
    advice = next(
        (text for prefix, text in SQLITE_ADVICE.items() if name.startswith(prefix)),
        "see `--debug` for where it happened",
    )
    return advice.format(path=path)


def server_where(url: URL) -> str:
    """`host:port` of a database server, for messages; PostgreSQL's defaults where left out."""
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _driver_words(error: DBAPIError) -> str:
    """What the database said, without psycopg's framing (`connection failed: connection to
    server at "…", port … failed: FATAL:  …`) or SQLAlchemy's link."""
    text = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else str(error)
    text = text.rsplit(" failed: ", 1)[-1]
    return re.sub(r"^(FATAL|ERROR):\s+", "", text).strip()


def _createdb(url: URL) -> str:
    host, port = url.host or "localhost", url.port or 5432
    return f"createdb -h {host} -p {port} -U {url.username or 'postgres'} {url.database}"
