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
