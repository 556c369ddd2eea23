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
    op.create_index(
        "ix_deliveries_unsent",
        "deliveries",
        ["digest_id", "id"],
        unique=False,
        sqlite_where=UNSENT,
        postgresql_where=UNSENT,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_unsent", table_name="deliveries")
