"""Repeated k-fold, studies and summary pairs: trials learn their repeat (0 for every existing one),
jobs may belong to a study (one comparison over several datasets), and each variant summary keeps
its per-(repeat, fold, seed) top-1 so the leaderboard can pair variants across jobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("study_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key("fk_jobs_study_id", "studies", ["study_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index("ix_jobs_study_id", ["study_id"], unique=False)
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repeat", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("variant_summaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pairs", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("test_train_ratio", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("variant_summaries", schema=None) as batch_op:
        batch_op.drop_column("test_train_ratio")
        batch_op.drop_column("pairs")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("repeat")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_study_id")
        batch_op.drop_constraint("fk_jobs_study_id", type_="foreignkey")
        batch_op.drop_column("study_id")
    op.drop_table("studies")
