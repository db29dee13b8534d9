"""Users with hashed bearer tokens, and who submitted each job and study.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 16:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_by", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_jobs_submitter_status", ["submitted_by", "status"], unique=False)
        batch_op.create_index("ix_jobs_submitter_started", ["submitted_by", "started_at"], unique=False)
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_by", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("submitted_by")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_submitter_started")
        batch_op.drop_index("ix_jobs_submitter_status")
        batch_op.drop_column("submitted_by")
    op.drop_table("users")
