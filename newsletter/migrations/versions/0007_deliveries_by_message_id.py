"""deliveries found by Message-ID, to check that a bounce report is about one of ours

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 22:50:00
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_message_id", "deliveries", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_message_id", table_name="deliveries")
