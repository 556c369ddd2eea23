"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from newsletter import db
from newsletter.models import Base


def test_the_migrations_make_the_models_schema(settings):
    db.upgrade(settings)
    with db.engine_for(settings.database_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert db.schema_is_current(settings)


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


def test_the_quick_check_of_the_schema_agrees_with_alembic(settings):
    # Every command asks whether the schema is current; the quick answer (one SELECT against
    # the newest migration file's revision) must be Alembic's whenever it says yes.
    from newsletter.db import _at_newest_migration, ensure_schema, schema_is_current

    assert not _at_newest_migration(settings)  # no database yet
    ensure_schema(settings)
    assert _at_newest_migration(settings) and schema_is_current(settings)
