"""a digest's unsent deliveries indexed apart, so that claiming the next ones is not slower
for every row already sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 00:40:00
"""

from contextlib import nullcontext

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UNSENT = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    # On a PostgreSQL table with rows, built CONCURRENTLY: a plain CREATE INDEX blocks every
    # write to deliveries while it reads the whole table (every reader of every digest so
    # far), so a send going on during the upgrade would wait for it. CONCURRENTLY cannot run
    # in a transaction (the migrations before are committed first), and waits for the
    # transactions open meanwhile. SQLite, or nothing to read: built at once, in the
    # upgrade's transaction.
    concurrently = postgresql and bind.scalar(sa.text("SELECT EXISTS (SELECT 1 FROM deliveries)"))
    with op.get_context().autocommit_block() if concurrently else nullcontext():
        if postgresql:  # one left INVALID by a build that failed
            op.drop_index(
                "ix_deliveries_unsent",
                table_name="deliveries",
                if_exists=True,
                postgresql_concurrently=concurrently,
            )
        op.create_index(
            "ix_deliveries_unsent",
            "deliveries",
            ["digest_id", "id"],
            sqlite_where=UNSENT,
            postgresql_where=UNSENT,
            postgresql_concurrently=concurrently,
        )


def downgrade() -> None:
    op.drop_index("ix_deliveries_unsent", table_name="deliveries")
