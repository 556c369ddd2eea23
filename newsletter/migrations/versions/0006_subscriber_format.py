"""a subscriber's mail format: HTML with text, or text only

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "format",
                sa.Enum("html", "text", name="mailformat", native_enum=False, length=10),
                nullable=False,
                server_default="html",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("format")
