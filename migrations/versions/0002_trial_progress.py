"""Trial progress: fraction done, epochs done and the latest held-out top-1, written by the
dispatcher after each epoch.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:05:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("val_top1", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("val_top1")
        batch_op.drop_column("epoch")
        batch_op.drop_column("progress")
