"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, text

from newsletter import db
from newsletter.models import Base
from tests.helpers import POSTGRES_URL


def test_the_migrations_make_the_models_schema(settings):
    db.upgrade(settings)
    with db.engine_for(settings.database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert db.schema_is_current(settings)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_digests_unique_indexes_are_partial_on_both_backends(backend):
    # Alembic compares no index's WHERE: a `PartialIndex` that lost it would pass the test
    # above, and `Base.metadata` would describe one daily digest a date for every kind.
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex

    dialect = {"sqlite": sqlite, "postgresql": postgresql}[backend].dialect()
    # Tools that copy an index (Alembic's autogenerate renders `dialect_kwargs`,
    # `Table.to_metadata`) must see the WHERE too: the copy compiled, not only the model.
    copied = Base.metadata.tables["digests"].to_metadata(MetaData())
    created, created_by_copy = (
        {index.name: str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes}
        for table in (Base.metadata.tables["digests"], copied)
    )
    assert created_by_copy == created
    assert {
        index.name: str(index.dialect_kwargs[f"{backend}_where"])
        for index in Base.metadata.tables["digests"].indexes
    } == {
        "uq_digests_daily_issue_date": "kind = 'daily'",
        "uq_digests_span_window": "kind = 'span'",
    }
    assert created == {
        "uq_digests_daily_issue_date": "CREATE UNIQUE INDEX uq_digests_daily_issue_date ON"
        " digests (issue_date) WHERE kind = 'daily'",
        "uq_digests_span_window": "CREATE UNIQUE INDEX uq_digests_span_window ON digests"
        " (window_start, window_end) WHERE kind = 'span'",
    }


def test_upgrading_a_database_with_data_keeps_every_row(settings):
    """Each migration after the first runs on a database in use: SQLite rebuilds a table to
    alter it, and a rebuild must not cascade into the rows that point at it."""
    from alembic import command

    config = db.alembic_config(settings)
    command.upgrade(config, "0003")
    statements = [
        "INSERT INTO topics (id, name, name_key, slug, description, keywords, categories,"
        " excludes, position, created_at) VALUES (1, 'SLAM', 'slam', 'slam', '', '[]', '[]',"
        " '[]', 0, '2026-11-26 06:00:00')",
        "INSERT INTO papers (id, arxiv_id, version, title, abstract, authors, categories,"
        " primary_category, published, updated, abs_url, code_urls, first_seen_at)"
        " VALUES (1, '2611.00001', 1, 'T', 'A', '[]', '[]', 'cs.CV', '2026-11-26 06:00:00',"
        " '2026-11-26 06:00:00', 'https://arxiv.org/abs/2611.00001', '[]',"
        " '2026-11-26 06:00:00')",
        "INSERT INTO topic_papers (topic_id, paper_id, linked_at)"
        " VALUES (1, 1, '2026-11-26 06:00:00')",
        "INSERT INTO subscribers (id, public_id, email, email_key, name, language, status,"
        " created_at, updated_at) VALUES (1, 'p1', 'ada@example.org', 'ada@example.org', '',"
        " 'en', 'active', '2026-11-26 06:00:00', '2026-11-26 06:00:00')",
        "INSERT INTO subscriber_topics (subscriber_id, topic_id) VALUES (1, 1)",
        "INSERT INTO events (subscriber_id, kind, source, detail, at)"
        " VALUES (1, 'subscribed', 'cli', '', '2026-11-26 06:00:00')",
    ]
    engine = db.engine_for(settings.database_url)
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)

    command.upgrade(config, "head")
    command.downgrade(config, "0003")
    command.upgrade(config, "head")

    with engine.connect() as connection:
        for table in ("topics", "papers", "topic_papers", "subscribers", "subscriber_topics"):
            count = connection.exec_driver_sql(f"SELECT count(*) FROM {table}")  # noqa: S608 (ours)
            assert count.scalar() == 1, table
        assert connection.exec_driver_sql("SELECT count(*) FROM events").scalar() == 1
        row = connection.exec_driver_sql("SELECT format FROM subscribers").scalar()
        assert row == "html"
        if engine.dialect.name == "sqlite":  # off for the migrations' rebuilds only
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_unsent_deliveries_index_is_built_on_a_table_in_use(settings):
    """On PostgreSQL a deliveries table with rows gets the claims' index built CONCURRENTLY,
    outside the upgrade's transaction: it must come out valid and partial, with every
    migration recorded, and an index of that name left by a failed build replaced."""
    from alembic import command
    from sqlalchemy import insert

    from newsletter.models import Delivery, Digest, Subscriber

    db.upgrade(settings)
    engine = db.engine_for(settings.database_url)
    with engine.begin() as connection:
        digest_id = connection.execute(
            insert(Digest)
            .values(issue_date=date(2026, 11, 26), window_end=datetime(2026, 11, 26, tzinfo=UTC))
            .returning(Digest.id)
        ).scalar_one()
        subscriber_id = connection.execute(
            insert(Subscriber)
            .values(email="ada@example.org", email_key="ada@example.org")
            .returning(Subscriber.id)
        ).scalar_one()
        connection.execute(
            insert(Delivery).values(
                digest_id=digest_id, subscriber_id=subscriber_id, message_id="<m@example.org>"
            )
        )
    config = db.alembic_config(settings)
    command.downgrade(config, "0010")
    if engine.dialect.name == "postgresql":  # what a build that failed midway leaves
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE INDEX ix_deliveries_unsent ON deliveries (id)")

    command.upgrade(config, "head")

    assert db.schema_is_current(settings)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            valid, definition = connection.execute(
                text(
                    "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i"
                    " JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE c.relname = 'ix_deliveries_unsent'"
                    " AND c.relnamespace = current_schema()::regnamespace"
                )
            ).one()
            assert valid
        else:
            definition = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_deliveries_unsent'"
            ).scalar_one()
        assert "(digest_id, id)" in definition
        assert "WHERE" in definition and "'pending'" in definition
        assert connection.exec_driver_sql("SELECT count(*) FROM deliveries").scalar() == 1


def test_the_quick_check_of_the_schema_agrees_with_alembic(settings):
    # Every command asks whether the schema is current; the quick answer (one SELECT against
    # the newest migration file's revision) must be Alembic's whenever it says yes.
    from newsletter.db import _at_newest_migration, ensure_schema, schema_is_current

    assert not _at_newest_migration(settings)  # no database yet
    ensure_schema(settings)
    assert _at_newest_migration(settings) and schema_is_current(settings)


# ---------------------------------------------------------------- PostgreSQL's pooled connections


def pooled_pid(settings) -> int:
    with db.session_scope(settings) as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_used_a_moment_ago_is_not_pinged_and_a_dead_one_is_replaced(
    settings, monkeypatch
):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite's connections are files, nothing to ping")
    dialect = db.engine_for(settings.database_url).dialect
    pings: list[object] = []
    ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))

    pid = pooled_pid(settings)
    assert pooled_pid(settings) == pid and pings == []  # given back moments ago: no ping

    # Killed by the server while it sat in the pool (a restart, an idle timeout): the next
    # unit of work pings it, finds it dead, and gets a new connection instead of an error.
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", "")) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)
    assert pooled_pid(settings) != pid
    assert pings


def test_the_web_s_lock_timeout_stays_with_its_connection_and_no_one_else_gets_it(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite's busy timeout has tests of its own")

    def lock_timeout() -> str:
        with db.session_scope(settings) as session:
            return session.execute(text("SHOW lock_timeout")).scalar_one()

    assert lock_timeout() == "0"  # the server's: wait as long as it takes
    with db.lock_timeout(1.5):
        assert lock_timeout() == "1500ms"
        with db.connection_scope(settings) as connection:  # one pooled connection: the same
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "1500ms"
            connection.rollback()  # a rollback does not undo it: it was set outside
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "1500ms"
    assert lock_timeout() == "0"  # a unit of work without a limit gets the server's again
