"""Analyses of finished jobs (pruning, channel weights) and where each trial's weights are.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-28 14:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights_uri", sa.String(length=1000), nullable=True))
    op.create_table(
        "analyses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("plots", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_analyses_status_created", "analyses", ["status", "created_at"], unique=False)
    op.create_index("ix_analyses_job", "analyses", ["job_id"], unique=False)
    op.create_table(
        "analysis_trials",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("trial_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["analysis_id"], ["analyses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_analysis_trials", "analysis_trials", ["analysis_id", "trial_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_analysis_trials", table_name="analysis_trials")
    op.drop_table("analysis_trials")
    op.drop_index("ix_analyses_job", table_name="analyses")
    op.drop_index("ix_analyses_status_created", table_name="analyses")
    op.drop_table("analyses")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("weights_uri")
