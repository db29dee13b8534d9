"""Initial schema: jobs, trials and per-variant summaries, with the indexes the results
and leaderboard queries use at a million trials.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 05:34:51.165288
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dataset', sa.String(length=300), nullable=False),
    sa.Column('backbone', sa.String(length=100), nullable=False),
    sa.Column('protocol', sa.String(length=100), nullable=False),
    sa.Column('protocol_hash', sa.String(length=64), nullable=False),
    sa.Column('dataset_fingerprint', sa.String(length=128), nullable=True),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('mlflow_experiment_id', sa.String(length=64), nullable=True),
    sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_dataset_created', ['dataset', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_status_created', ['status', 'created_at'], unique=False)

    op.create_table('trials',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('variant', sa.String(length=200), nullable=False),
    sa.Column('fold', sa.Integer(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reused', sa.Boolean(), nullable=False),
    sa.Column('reused_from', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('top1', sa.Float(), nullable=True),
    sa.Column('top5', sa.Float(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('train_time_s', sa.Float(), nullable=True),
    sa.Column('device', sa.String(length=100), nullable=True),
    sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.create_index('ix_trials_content_hash_status', ['content_hash', 'status'], unique=False)
        batch_op.create_index('ix_trials_job_status', ['job_id', 'status'], unique=False)
        batch_op.create_index('ix_trials_job_variant', ['job_id', 'variant'], unique=False)

    op.create_table('variant_summaries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('variant', sa.String(length=200), nullable=False),
    sa.Column('dataset', sa.String(length=300), nullable=False),
    sa.Column('backbone', sa.String(length=100), nullable=False),
    sa.Column('protocol', sa.String(length=100), nullable=False),
    sa.Column('protocol_hash', sa.String(length=64), nullable=False),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('top1_mean', sa.Float(), nullable=True),
    sa.Column('top1_std', sa.Float(), nullable=True),
    sa.Column('top5_mean', sa.Float(), nullable=True),
    sa.Column('top5_std', sa.Float(), nullable=True),
    sa.Column('params', sa.BigInteger(), nullable=True),
    sa.Column('macs', sa.BigInteger(), nullable=True),
    sa.Column('images_per_s', sa.Float(), nullable=True),
    sa.Column('group_top1', sa.JSON(), nullable=True),
    sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('variant_summaries', schema=None) as batch_op:
        batch_op.create_index('ix_summaries_leaderboard', ['dataset', 'backbone', 'protocol_hash', 'variant'], unique=False)
        batch_op.create_index('ux_summaries_job_variant', ['job_id', 'variant'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('variant_summaries', schema=None) as batch_op:
        batch_op.drop_index('ux_summaries_job_variant')
        batch_op.drop_index('ix_summaries_leaderboard')

    op.drop_table('variant_summaries')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_job_variant')
        batch_op.drop_index('ix_trials_job_status')
        batch_op.drop_index('ix_trials_content_hash_status')

    op.drop_table('trials')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_created')
        batch_op.drop_index('ix_jobs_dataset_created')

    op.drop_table('jobs')
