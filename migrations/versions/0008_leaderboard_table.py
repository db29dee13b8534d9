"""The leaderboard as a table kept as jobs finish, backfilled from the existing summaries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 16:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leaderboard_rows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=300), nullable=False),
        sa.Column("backbone", sa.String(length=100), nullable=False),
        sa.Column("protocol", sa.String(length=100), nullable=False),
        sa.Column("protocol_hash", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_leaderboard_rows_group_variant", "leaderboard_rows",
                    ["dataset", "backbone", "protocol_hash", "variant"], unique=True)
    op.create_index("ix_leaderboard_rows_read", "leaderboard_rows",
                    ["dataset", "backbone", "protocol", "protocol_hash", "position"], unique=False)
    from service.leaderboard import rebuild  # the same aggregation the service keeps the table with

    session = Session(bind=op.get_bind())
    rebuild(session)
    session.flush()


def downgrade() -> None:
    op.drop_index("ix_leaderboard_rows_read", table_name="leaderboard_rows")
    op.drop_index("ux_leaderboard_rows_group_variant", table_name="leaderboard_rows")
    op.drop_table("leaderboard_rows")
