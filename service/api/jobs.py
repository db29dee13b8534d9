"""Job routes: submit, list, inspect, cancel, results."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from service import jobs, planning, power, reports, results
from service.api.deps import NOT_FOUND_OR_INVALID, EffectQuery, RopeQuery, SessionDep, require_writer
from service.models import JOB_STATUSES
from service.schemas import DEFAULT_ROPE, JobCreated, JobDetail, JobOut, JobPage, JobRequest, Progress, TrialOut

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _detail(job) -> JobDetail:
    return JobDetail(**JobOut.model_validate(job, from_attributes=True).model_dump(), spec=job.spec,
                     progress=Progress(**jobs.progress(job)),
                     trials=[TrialOut.model_validate(t, from_attributes=True) for t in job.trials])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobCreated,
             dependencies=[Depends(require_writer)],
             summary="Submit a comparison job (a full spec, or a preset plus changes)")
def submit_job(request: JobRequest, session: SessionDep, response: Response,
               idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JobCreated:
    planned = planning.plan(request)
    job, created = jobs.create_job(session, planned, idempotency_key)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobCreated(id=job.id, status=job.status, n_trials=job.n_trials)


@router.get("", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(session: SessionDep,
              status_: Annotated[Literal[JOB_STATUSES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
              dataset: str | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0) -> JobPage:
    items, total = jobs.list_jobs(session, status_, dataset, limit, offset)
    return JobPage(items=[JobOut.model_validate(j, from_attributes=True) for j in items], total=total,
                   limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobDetail, summary="A job with each trial's status, progress and error")
def get_job(job_id: str, session: SessionDep) -> JobDetail:
    return _detail(jobs.get_job(session, job_id, with_trials=True))


@router.delete("/{job_id}", response_model=JobDetail, dependencies=[Depends(require_writer)],
               summary="Cancel a job: running trials are stopped on Ray, finished ones kept")
def cancel_job(job_id: str, session: SessionDep) -> JobDetail:
    jobs.cancel_job(session, job_id)
    session.expire_all()
    return _detail(jobs.get_job(session, job_id, with_trials=True))


@router.get("/{job_id}/results", summary="Per-variant cross-validation results with corrected and Bayesian tests",
            responses={200: {"content": {"text/csv": {}, "text/markdown": {}}}, **NOT_FOUND_OR_INVALID})
def job_results(job_id: str, session: SessionDep,
                format: Literal["json", "csv", "markdown"] = "json",  # noqa: A002 - the query parameter's name
                rope: RopeQuery = None):
    summary = results.job_results_by_id(session, job_id, rope)
    if format == "csv":
        return PlainTextResponse(results.to_csv(summary), media_type="text/csv")
    if format == "markdown":
        return PlainTextResponse(results.to_markdown(summary), media_type="text/markdown")
    return JSONResponse(summary)  # plain JSON types already: skips jsonable_encoder on the hot path


@router.get("/{job_id}/report", response_class=HTMLResponse,
            summary="A finished job's report: one self-contained HTML page with its table and plots",
            responses={200: {"content": {"text/html": {}}}, 404: {"description": "no job with this id"},
                       409: {"description": "the job has not finished yet; the message says its status"}})
def job_report(job_id: str, session: SessionDep) -> HTMLResponse:
    return HTMLResponse(reports.job_report(session, job_id))


@router.get("/{job_id}/plan", summary="Power planner: the effect this job can detect and the repeats that would "
                                      "detect `effect`", responses=NOT_FOUND_OR_INVALID)
def job_plan(job_id: str, session: SessionDep, effect: EffectQuery = DEFAULT_ROPE) -> JSONResponse:
    return JSONResponse(power.job_plan(results.job_results_by_id(session, job_id), effect))
