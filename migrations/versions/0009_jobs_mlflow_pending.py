"""Jobs that ended while their MLflow tracking server was away, kept in SQL until their runs are repaired.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 21:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mlflow_pending", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index("ix_jobs_mlflow_pending", ["mlflow_pending"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_mlflow_pending")
        batch_op.drop_column("mlflow_pending")
