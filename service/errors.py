"""Errors the service turns into clear messages (HTTP 422/404/409, or a CLI line)."""
from __future__ import annotations


class SpecError(ValueError):
    """A job spec that cannot run; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobNotFound(LookupError):
    def __init__(self, job_id: str):
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class StudyNotFound(LookupError):
    def __init__(self, study_id: str):
        super().__init__(f"no study with id {study_id!r}")
        self.study_id = study_id


class NotReady(ValueError):
    """The thing asked for cannot be made from what exists yet (e.g. a study's plot before its results)."""


class JobNotFinished(NotReady):
    """Something only a finished job has (its report) was asked of a queued or running one."""

    def __init__(self, job_id: str, status: str):
        super().__init__(f"job {job_id} is {status}; its report is made when it ends "
                         "(succeeded, failed or cancelled)")
        self.job_id, self.status = job_id, status


class IdempotencyConflict(ValueError):
    """The same Idempotency-Key was sent with a different body."""


class AnalysisNotFound(LookupError):
    def __init__(self, analysis_id: str):
        super().__init__(f"no analysis with id {analysis_id!r}")


class Forbidden(PermissionError):
    """The caller is known but may not do this (HTTP 403); the message says who may."""


class TooManyTrials(SpecError):
    """A job bigger than SRM_BENCH_MAX_TRIALS_PER_JOB (HTTP 422, naming the count and the limit)."""

    def __init__(self, field: str, n_trials: int, limit: int):
        super().__init__(field, f"this job has {n_trials} trials (variants x folds x repeats x seeds); the limit "
                                f"is {limit} per job (SRM_BENCH_MAX_TRIALS_PER_JOB): fewer variants, folds, "
                                "repeats or seeds")
        self.n_trials, self.limit = n_trials, limit


class QuotaExceeded(Exception):
    """Too many queued jobs for one user (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s
