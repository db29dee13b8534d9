"""SQL tables: jobs, their trials, and per-job per-variant summaries.

SQL is the source of truth for job and trial state and for every number the API reports.
The schema changes only through Alembic (migrations/); tests fail when this file and the
migrations drift apart.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TRIAL_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
ANALYSIS_STATUSES = ("queued", "running", "succeeded", "failed")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    """Someone who submits work with a bearer token; only the token's SHA-256 is stored."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)  # None once revoked
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Study(Base):
    """One comparison over several datasets: a job per dataset, ranked together (Demšar 2006)."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    jobs: Mapped[list[Job]] = relationship(back_populates="study", order_by="Job.dataset")


class Job(Base):
    """One submitted comparison: a spec expanded into trials (variant x fold x seed)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    dataset: Mapped[str] = mapped_column(String(300))
    backbone: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(100))
    protocol_hash: Mapped[str] = mapped_column(String(64))
    dataset_fingerprint: Mapped[str | None] = mapped_column(String(128))
    n_trials: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    study_id: Mapped[str | None] = mapped_column(ForeignKey("studies.id", name="fk_jobs_study_id",
                                                            ondelete="SET NULL"))
    # Who submitted it (a user's name, "admin" for the bootstrap token, None when writes are open):
    # who may cancel it, whose quota it counts against, and whose turn it is in the dispatcher.
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    # Ended while MLflow was away: its runs are repaired when the tracking server is back (any dispatcher).
    mlflow_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    trials: Mapped[list[Trial]] = relationship(back_populates="job", order_by="Trial.id",
                                               cascade="all, delete-orphan")
    study: Mapped[Study | None] = relationship(back_populates="jobs")

    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_dataset_created", "dataset", "created_at"),
        Index("ix_jobs_study_id", "study_id"),
        Index("ix_jobs_submitter_status", "submitted_by", "status"),
        Index("ix_jobs_submitter_started", "submitted_by", "started_at"),
        Index("ix_jobs_mlflow_pending", "mlflow_pending"),
    )


class Trial(Base):
    """One training run: a variant on one fold of one repeat with one seed. Ended exactly once."""

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(200))
    fold: Mapped[int | None]
    seed: Mapped[int] = mapped_column(Integer)
    repeat: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    spec: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reused: Mapped[bool] = mapped_column(Boolean, default=False)
    reused_from: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    top1: Mapped[float | None] = mapped_column(Float)
    top5: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    train_time_s: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(100))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Live progress, one UPDATE per epoch: fraction of the training done (0..1; null while the
    # epoch count is unknown), epochs done, and the held-out top-1 after the latest epoch.
    progress: Mapped[float | None] = mapped_column(Float)
    epoch: Mapped[int | None] = mapped_column(Integer)
    val_top1: Mapped[float | None] = mapped_column(Float)
    # Where the final weights are: runs:/<mlflow run>/checkpoint/last.pt, or a file:// URI under
    # SRM_BENCH_HOME/models; a reused trial carries its donor's.
    weights_uri: Mapped[str | None] = mapped_column(String(1000))

    job: Mapped[Job] = relationship(back_populates="trials")

    __table_args__ = (
        Index("ix_trials_job_variant", "job_id", "variant"),
        Index("ix_trials_job_status", "job_id", "status"),
        Index("ix_trials_content_hash_status", "content_hash", "status"),
    )


LEADERBOARD_COLUMNS = ("dataset", "backbone", "protocol", "protocol_hash", "variant", "n_trials",
                       "top1_mean", "top1_std", "top5_mean", "top5_std", "params", "macs",
                       "images_per_s", "job_id")


class VariantSummary(Base):
    """Cross-validation summary of one variant in one finished job; feeds the leaderboard."""

    __tablename__ = "variant_summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(300))
    backbone: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(100))
    protocol_hash: Mapped[str] = mapped_column(String(64))
    n_trials: Mapped[int] = mapped_column(Integer)
    top1_mean: Mapped[float | None] = mapped_column(Float)
    top1_std: Mapped[float | None] = mapped_column(Float)
    top5_mean: Mapped[float | None] = mapped_column(Float)
    top5_std: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    macs: Mapped[int | None] = mapped_column(BigInteger)
    images_per_s: Mapped[float | None] = mapped_column(Float)
    group_top1: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # top-1 per "repeat/fold/seed" key and the trials' mean held-out/training size ratio: what the
    # leaderboard's corrected tests pair on (service.ranking).
    pairs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    test_train_ratio: Mapped[float | None] = mapped_column(Float)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ux_summaries_job_variant", "job_id", "variant", unique=True),
        # Covering: the leaderboard's aggregate reads only the index, not one table row per summary.
        Index("ix_summaries_leaderboard_covering", *LEADERBOARD_COLUMNS),
    )


class LeaderboardRow(Base):
    """One variant's row of a leaderboard group (dataset, backbone, protocol hash), kept up to date as
    jobs finish (service.leaderboard), so a request reads the leaderboard rather than its history."""

    __tablename__ = "leaderboard_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(300))
    backbone: Mapped[str] = mapped_column(String(100))
    protocol: Mapped[str] = mapped_column(String(100))
    protocol_hash: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)  # 0 for the group's best, as GET /v1/leaderboard lists them
    row: Mapped[dict[str, Any]]  # the response's row: pooled numbers, rank, tie group, test against the best
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ux_leaderboard_rows_group_variant", "dataset", "backbone", "protocol_hash", "variant", unique=True),
        Index("ix_leaderboard_rows_read", "dataset", "backbone", "protocol", "protocol_hash", "position"),
    )


class Analysis(Base):
    """A post-hoc analysis of a finished job's trained trials (Sec. 5 of the paper): queued in SQL,
    claimed with a lease like a job, run on Ray one task per trial."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    plots: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # plot name -> file path
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    parts: Mapped[list[AnalysisTrial]] = relationship(back_populates="analysis", order_by="AnalysisTrial.id",
                                                      cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_analyses_status_created", "status", "created_at"),
        Index("ix_analyses_job", "job_id"),
    )


class AnalysisTrial(Base):
    """One trial's part of an analysis; written the moment its Ray task ends, so a resumed
    analysis runs only the parts still missing."""

    __tablename__ = "analysis_trials"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                          ForeignKey("trials.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]

    analysis: Mapped[Analysis] = relationship(back_populates="parts")

    __table_args__ = (Index("ux_analysis_trials", "analysis_id", "trial_id", unique=True),)
