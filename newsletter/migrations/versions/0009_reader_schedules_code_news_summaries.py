"""each reader's cadence, hour and zone; digests that span days; when code appeared; summaries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DAILY = sa.text("kind = 'daily'")
SPAN = sa.text("kind = 'span'")


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cadence", sa.String(10), nullable=False, server_default="daily")
        )
        batch_op.add_column(sa.Column("send_hour", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("send_day", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("next_send_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("delivered_through", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_subscribers_next_send_at", ["next_send_at"])
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_constraint("uq_digests_issue_date", type_="unique")
        batch_op.add_column(
            sa.Column("kind", sa.String(10), nullable=False, server_default="daily")
        )
        batch_op.add_column(sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True))
    # The digests built before this version were all sent whole: they are ready.
    op.execute("UPDATE digests SET ready_at = created_at")
    op.create_index(
        "uq_digests_daily_issue_date",
        "digests",
        ["issue_date"],
        unique=True,
        sqlite_where=DAILY,
        postgresql_where=DAILY,
    )
    op.create_index(
        "uq_digests_span_window",
        "digests",
        ["window_start", "window_end"],
        unique=True,
        sqlite_where=SPAN,
        postgresql_where=SPAN,
    )
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_found_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_papers_code_found_at", ["code_found_at"])
    op.create_table(
        "summaries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "paper_id",
            sa.Integer(),
            sa.ForeignKey("papers.id", ondelete="CASCADE", name="fk_summaries_paper_id_papers"),
            nullable=False,
        ),
        sa.Column("language", sa.String(35), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("paper_id", "language", name="uq_summaries_paper_language"),
    )


def downgrade() -> None:
    op.drop_table("summaries")
    with op.batch_alter_table("papers", schema=None) as batch_op:
        batch_op.drop_index("ix_papers_code_found_at")
        batch_op.drop_column("code_found_at")
    op.drop_index("uq_digests_span_window", table_name="digests")
    op.drop_index("uq_digests_daily_issue_date", table_name="digests")
    op.execute("DELETE FROM digests WHERE kind <> 'daily'")
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_column("ready_at")
        batch_op.drop_column("kind")
        batch_op.create_unique_constraint("uq_digests_issue_date", ["issue_date"])
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_next_send_at")
        for column in (
            "delivered_through",
            "next_send_at",
            "timezone",
            "send_day",
            "send_hour",
            "cadence",
        ):
            batch_op.drop_column(column)
