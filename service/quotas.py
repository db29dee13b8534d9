"""Per-user limits on submissions, checked in the transaction that inserts the jobs.

Trials per job (SRM_BENCH_MAX_TRIALS_PER_JOB) bind everyone: a job that size is a mistake more
often than a plan. Queued jobs per user (SRM_BENCH_MAX_QUEUED_JOBS_PER_USER) bind named users,
not admins: the user's row is locked first, so two concurrent submissions cannot both slip
under the limit (PostgreSQL; SQLite serialises writers anyway).
"""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import QuotaExceeded, TooManyTrials
from service.models import Job, User
from service.planning import PlannedJob
from service.users import Caller
from workers.settings import current

RETRY_AFTER_S = 60  # jobs take minutes; a client that waits a minute finds room or asks again


def check_trials(planned: Sequence[PlannedJob], field_of=lambda index: "") -> None:
    """Refuse any job over the trial limit; ``field_of(index)`` names the offending job's field."""
    limit = current().max_trials_per_job
    for index, job in enumerate(planned):
        if len(job.trials) > limit:
            raise TooManyTrials(field_of(index), len(job.trials), limit)


def check_queue(session: Session, caller: Caller, new_jobs: int) -> None:
    """Refuse a named, non-admin user whose queued jobs plus these would pass the limit."""
    if caller.name is None or caller.is_admin:
        return
    session.scalars(select(User.name).where(User.name == caller.name).with_for_update()).first()
    limit = current().max_queued_jobs_per_user
    queued = session.scalar(select(func.count()).select_from(Job)
                            .where(Job.submitted_by == caller.name, Job.status == "queued")) or 0
    if queued + new_jobs > limit:
        raise QuotaExceeded(f"user {caller.name!r} has {queued} queued job(s); {new_jobs} more would pass the "
                            f"limit of {limit} queued jobs per user (SRM_BENCH_MAX_QUEUED_JOBS_PER_USER). "
                            f"Retry when some have started, or cancel some", RETRY_AFTER_S)
