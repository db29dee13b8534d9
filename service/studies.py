"""Studies: one comparison (variants, backbone, protocol, folds) over several datasets, stored as one
job per dataset, and their results across datasets (service.study_stats)."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from service import jobs, planning, power, presets
from service.errors import NotReady, SpecError, StudyNotFound
from service.idempotent import insert_once
from service.models import FINISHED, Study, utcnow
from service.results import job_results
from service.schemas import JobRequest, StudyRequest
from service.study_stats import compare_over_datasets
from service.users import Caller

MIN_DATASETS = 2


def resolve(request: StudyRequest) -> dict[str, Any]:
    """The study's spec: a preset overlaid with the explicit fields, with its datasets checked."""
    base = presets.expand_study(request.preset) if request.preset else {}
    spec = base | request.model_dump(mode="json", exclude_unset=True, exclude={"preset"})
    datasets = spec.get("datasets")
    if not datasets:
        raise SpecError("datasets", f"required unless a preset is given: {MIN_DATASETS} or more distinct datasets "
                                    "(3 or more for a post-hoc conclusion)")
    if len(datasets) < MIN_DATASETS:
        raise SpecError("datasets", f"a study compares variants over at least {MIN_DATASETS} datasets (3 or more "
                                    f"for a post-hoc conclusion); got {len(datasets)}. One dataset is a job: "
                                    "POST /v1/jobs")
    for index, name in enumerate(datasets):
        if name in datasets[:index]:
            raise SpecError(f"datasets.{index}", f"dataset {name!r} is listed twice")
    return spec


def plan(request: StudyRequest) -> tuple[dict[str, Any], list[planning.PlannedJob]]:
    """The study spec and one checked, planned job per dataset (a SpecError names the dataset's index)."""
    spec = resolve(request)
    common = {key: value for key, value in spec.items() if key not in ("datasets", "name")}
    planned = []
    for index, dataset in enumerate(spec["datasets"]):
        name = f"{spec.get('name') or 'study'}: {dataset}"
        try:
            planned.append(planning.plan(JobRequest.model_validate(common | {"dataset": dataset, "name": name})))
        except SpecError as err:
            raise SpecError(f"datasets.{index}" if err.field == "dataset" else err.field, err.message) from err
    return spec, planned


def create_study(session: Session, spec: dict[str, Any], planned: list[planning.PlannedJob],
                 idempotency_key: str | None = None, submitted_by: str | None = None,
                 before_insert: Callable[[], None] | None = None) -> tuple[Study, bool]:
    """Insert the study and its jobs in one transaction; a known key returns the first study.
    ``before_insert`` (a quota check) runs only when a new study is about to be inserted."""
    study = Study(id=uuid.uuid4().hex, name=spec.get("name"), spec=spec, idempotency_key=idempotency_key,
                  created_at=utcnow(), submitted_by=submitted_by)
    row, created = insert_once(session, Study, "study", spec, idempotency_key,
                               lambda: [study, *(jobs.new_job(p, study_id=study.id, submitted_by=submitted_by)
                                                 for p in planned)], before_insert)
    return get_study(session, row.id), created


def get_study(session: Session, study_id: str) -> Study:
    study = session.scalars(select(Study).where(Study.id == study_id).options(selectinload(Study.jobs))).first()
    if study is None:
        raise StudyNotFound(study_id)
    return study


def list_studies(session: Session, limit: int = 50, offset: int = 0) -> tuple[list[Study], int]:
    total = session.scalar(select(func.count()).select_from(Study)) or 0
    rows = session.scalars(select(Study).options(selectinload(Study.jobs))
                           .order_by(Study.created_at.desc(), Study.id).limit(limit).offset(offset)).all()
    return list(rows), total


def status(study: Study) -> str:
    """queued/running while a job is; then failed, cancelled or succeeded (the worst of its jobs)."""
    statuses = {job.status for job in study.jobs}
    if statuses - set(FINISHED):
        return "running" if statuses != {"queued"} else "queued"
    for worst in ("failed", "cancelled"):
        if worst in statuses:
            return worst
    return "succeeded"


def datasets(study: Study) -> list[str]:
    return list(study.spec["datasets"])


def jobs_in_order(study: Study) -> list[Any]:
    """The study's jobs in the order of its datasets."""
    by_dataset = {job.dataset: job for job in study.jobs}
    return [by_dataset[name] for name in datasets(study) if name in by_dataset]


def cancel_study(session: Session, study_id: str, caller: Caller | None = None) -> Study:
    """Cancel every job of the study; only its submitter or an admin may."""
    study = get_study(session, study_id)
    jobs.may_cancel(caller, study.submitted_by, f"study {study_id}")
    for job in study.jobs:
        jobs.cancel_job(session, job.id)
    session.expire_all()
    return get_study(session, study_id)


def study_results(session: Session, study_id: str, rope: float | None = None) -> dict[str, Any]:
    """Per-dataset results rows, and the variants compared over the datasets where every variant has a
    mean top-1 (the others are listed with the reason, never dropped silently)."""
    study = get_study(session, study_id)
    per_dataset = [{"dataset": job.dataset, "job_id": job.id, "status": job.status,
                    "rows": job_results(session, job, rope)["rows"]} for job in jobs_in_order(study)]
    variants = list(dict.fromkeys(row["variant"] for item in per_dataset for row in item["rows"]))
    matrix, excluded = [], []
    for item in per_dataset:
        means = {row["variant"]: row["top1_mean"] for row in item["rows"]}
        missing = [v for v in variants if means.get(v) is None]
        if missing or not variants:
            which = ", ".join(missing) or "any variant"
            excluded.append({"dataset": item["dataset"], "reason": f"no top-1 yet for {which} (job {item['status']})"})
            continue
        matrix.append([means[v] for v in variants])
    body: dict[str, Any] = {"study_id": study.id, "name": study.name, "status": status(study),
                            "datasets": per_dataset, "excluded_datasets": excluded, "comparison": None}
    if variants and len(matrix) >= MIN_DATASETS:
        body["comparison"] = compare_over_datasets(variants, np.asarray(matrix, dtype=float))
        body["comparison"]["datasets"] = [d["dataset"] for d in per_dataset
                                          if d["dataset"] not in {e["dataset"] for e in excluded}]
    else:
        body["note"] = (f"{len(matrix)} dataset(s) have a top-1 for every variant; comparing over datasets needs "
                        f"at least {MIN_DATASETS}")
    return body


def study_plan(session: Session, study_id: str, effect: float) -> dict[str, Any]:
    """The power plan of every dataset's job."""
    study = get_study(session, study_id)
    return {"study_id": study.id, "effect": effect,
            "jobs": [power.job_plan(job_results(session, job), effect) for job in jobs_in_order(study)]}


def cd_png(session: Session, study_id: str) -> bytes:
    from service.study_stats import cd_diagram_png

    results = study_results(session, study_id)
    comparison = results["comparison"]
    if comparison is None or comparison["nemenyi"] is None:
        reason = results.get("note") or (comparison or {}).get("note", "")
        raise NotReady(f"no critical difference diagram for study {study_id} yet: {reason}")
    title = (f"{results['name'] or 'study'}: average ranks over {comparison['n_datasets']} datasets "
             f"(Nemenyi CD = {comparison['nemenyi']['critical_difference']:.2f})")
    return cd_diagram_png(comparison, title)
