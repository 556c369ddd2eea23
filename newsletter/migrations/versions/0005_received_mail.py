"""the mail acted on, so that a mailbox read again acts on nothing twice

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 22:20:00
"""

import sqlalchemy as sa
from alembic import op

import newsletter.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "received_mail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("read_at", newsletter.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_mail")),
        sa.UniqueConstraint("key", name=op.f("uq_received_mail_key")),
    )


def downgrade() -> None:
    op.drop_table("received_mail")
