"""a topic remembers that its last fetch stopped half-way

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 22:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("topics", schema=None) as batch_op:
        # A literal default: SQLite then adds the column in place rather than rebuilding.
        batch_op.add_column(
            sa.Column("fetch_incomplete", sa.Boolean(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("topics", schema=None) as batch_op:
        batch_op.drop_column("fetch_incomplete")
