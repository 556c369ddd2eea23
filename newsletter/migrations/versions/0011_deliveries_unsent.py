"""a digest's unsent deliveries indexed apart, so that claiming the next ones is not slower
for every row already sent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 00:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UNSENT = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    bind = op.get_bind()
    in_use = bind.dialect.name == "postgresql" and bind.scalar(
        sa.text("SELECT EXISTS (SELECT 1 FROM deliveries)")
    )
    if not in_use:  # SQLite, or nothing to read: built at once, in the upgrade's transaction
        if bind.dialect.name == "postgresql":  # one a failed build left (see below)
            op.execute("DROP INDEX IF EXISTS ix_deliveries_unsent")
        op.create_index(
            "ix_deliveries_unsent",
            "deliveries",
            ["digest_id", "id"],
            sqlite_where=UNSENT,
            postgresql_where=UNSENT,
        )
        return
    # Built CONCURRENTLY: a plain CREATE INDEX blocks every write to deliveries while it reads
    # the whole table (every reader of every digest so far), so a send going on during the
    # upgrade would wait for it. CONCURRENTLY cannot run in a transaction (the migrations
    # before are committed first), and waits for the transactions open meanwhile. One left
    # INVALID by a build that failed is dropped first.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_deliveries_unsent")
        op.create_index(
            "ix_deliveries_unsent",
            "deliveries",
            ["digest_id", "id"],
            postgresql_where=UNSENT,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_deliveries_unsent", table_name="deliveries")
