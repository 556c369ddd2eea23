"""The engine, sessions and schema migrations (Alembic, shipped inside the package)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from newsletter.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


@lru_cache(maxsize=8)
def engine_for(database_url: str) -> Engine:
    """One engine per database address, made once per process."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the web app read while a worker writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
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
        yield session
