"""Job and trial rows: create, read, list, cancel. Everything here is one SQL transaction."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from service.errors import Forbidden, JobNotFound
from service.idempotent import insert_once
from service.models import FINISHED, Job, Trial, utcnow
from service.planning import PlannedJob
from service.users import Caller


def new_job(planned: PlannedJob, idempotency_key: str | None = None, study_id: str | None = None,
            submitted_by: str | None = None) -> Job:
    """A queued job and its trials, not yet added to a session."""
    spec = planned.spec.model_dump(mode="json")
    job = Job(id=uuid.uuid4().hex, name=planned.spec.name, spec=spec, status="queued", study_id=study_id,
              dataset=planned.spec.dataset, backbone=planned.spec.backbone, protocol=planned.spec.protocol,
              protocol_hash=planned.protocol_hash, dataset_fingerprint=planned.dataset_fingerprint,
              n_trials=len(planned.trials), idempotency_key=idempotency_key, cancel_requested=False,
              created_at=utcnow(), submitted_by=submitted_by)
    job.trials = [Trial(variant=t.variant, repeat=t.repeat, fold=t.fold, seed=t.seed,
                        spec=t.spec | {"job_id": job.id}, content_hash=t.content_hash, status="queued",
                        attempts=0, reused=False)
                  for t in planned.trials]
    return job


def create_job(session: Session, planned: PlannedJob, idempotency_key: str | None = None,
               submitted_by: str | None = None, before_insert: Callable[[], None] | None = None) -> tuple[Job, bool]:
    """Insert a queued job and its trials; returns (job, created). A known key returns the first job.
    ``before_insert`` (a quota check) runs only when a new job is about to be inserted, in its transaction."""
    return insert_once(session, Job, "job", planned.spec.model_dump(mode="json"), idempotency_key,
                       lambda: [new_job(planned, idempotency_key, submitted_by=submitted_by)], before_insert)


def get_job(session: Session, job_id: str, with_trials: bool = False) -> Job:
    query = select(Job).where(Job.id == job_id)
    if with_trials:
        query = query.options(selectinload(Job.trials))
    job = session.scalars(query).first()
    if job is None:
        raise JobNotFound(job_id)
    return job


def list_jobs(session: Session, status: str | None = None, dataset: str | None = None,
              limit: int = 50, offset: int = 0, submitted_by: str | None = None) -> tuple[list[Job], int]:
    query = select(Job)
    if submitted_by:
        query = query.where(Job.submitted_by == submitted_by)
    if status:
        query = query.where(Job.status == status)
    if dataset:
        query = query.where(Job.dataset == dataset)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    jobs = session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)).all()
    return list(jobs), total


def progress(job: Job) -> dict[str, Any]:
    """Trial counts by status; the fraction counts finished trials whole and running ones by their progress."""
    counts = Counter(trial.status for trial in job.trials)
    finished = sum(counts[s] for s in FINISHED)
    total = len(job.trials)
    running = sum(trial.progress or 0.0 for trial in job.trials if trial.status == "running")
    return {"total": total, "finished": finished, "counts": dict(counts),
            "fraction": (finished + running) / total if total else 1.0}


def may_cancel(caller: Caller | None, submitted_by: str | None, what: str) -> None:
    """Only the submitter or an admin may cancel; a Forbidden says who may."""
    if caller is None or caller.is_admin or (caller.name is not None and caller.name == submitted_by):
        return
    owner = f"submitted by {submitted_by!r}; only {submitted_by!r} or an admin" if submitted_by else \
        "submitted without a user; only an admin"
    raise Forbidden(f"{what} was {owner} may cancel it (you are {caller.name!r})")


def cancel_job(session: Session, job_id: str, caller: Caller | None = None) -> Job:
    """Queued jobs end at once; a running job is flagged and its dispatcher stops its trials on Ray.
    ``caller`` None is the service itself (a study's cancel, already checked)."""
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        raise JobNotFound(job_id)
    try:
        may_cancel(caller, job.submitted_by, f"job {job_id}")
    except Forbidden:
        session.rollback()
        raise
    if job.status in FINISHED:
        session.rollback()
        return job
    job.cancel_requested = True
    if job.status == "queued":
        now = utcnow()
        for trial in job.trials:
            if trial.status not in FINISHED:
                trial.status, trial.finished_at = "cancelled", now
        job.status, job.finished_at = "cancelled", now
    session.commit()
    return job
