"""followed authors, what readers saved and rated, paper features and per-reader rankings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _key(column: str, table: str) -> sa.Column:
    """A primary-key column that refers to `table` and goes with its row."""
    return sa.Column(
        column, sa.Integer(), sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ranking", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    op.create_table(
        "follows",
        _key("subscriber_id", "subscribers"),
        sa.Column("name_key", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_follows_name_key", "follows", ["name_key"])
    op.create_table(
        "reader_papers",
        _key("subscriber_id", "subscribers"),
        _key("paper_id", "papers"),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reader_papers_saved", "reader_papers", ["subscriber_id", "saved_at"])
    op.create_table(
        "paper_features",
        _key("paper_id", "papers"),
        sa.Column("scheme", sa.String(40), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "reader_rankings",
        _key("digest_id", "digests"),
        _key("subscriber_id", "subscribers"),
        sa.Column("paper_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reader_rankings")
    op.drop_table("paper_features")
    op.drop_index("ix_reader_papers_saved", table_name="reader_papers")
    op.drop_table("reader_papers")
    op.drop_index("ix_follows_name_key", table_name="follows")
    op.drop_table("follows")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("ranking")
