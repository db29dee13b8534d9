"""Job routes: submit, list, inspect, cancel, results."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from service import jobs, planning, power, quotas, reports, results
from service.api.contract import errors
from service.api.deps import MAX_OFFSET, EffectQuery, RopeQuery, SessionDep, WriterDep
from service.models import JOB_STATUSES
from service.result_schemas import JobResults, StyleResults
from service.schemas import DEFAULT_ROPE, JobCreated, JobDetail, JobOut, JobPage, JobRequest, Progress, TrialOut

router = APIRouter(prefix="/jobs", tags=["jobs"])
NO_JOB = errors(404, s404="no job with this id")


def _detail(job) -> JobDetail:
    return JobDetail(**JobOut.model_validate(job, from_attributes=True).model_dump(), spec=job.spec,
                     progress=Progress(**jobs.progress(job)),
                     trials=[TrialOut.model_validate(t, from_attributes=True) for t in job.trials])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobCreated,
             responses=errors(400, 409, 429, s409="the Idempotency-Key was used with another body"),
             summary="Submit a comparison job (a full spec, or a preset plus changes)")
def submit_job(request: JobRequest, session: SessionDep, response: Response, caller: WriterDep,
               idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JobCreated:
    planned = planning.plan(request)
    quotas.check_trials([planned])
    job, created = jobs.create_job(session, planned, idempotency_key, submitted_by=caller.name,
                                   before_insert=lambda: quotas.check_queue(session, caller, 1))
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return JobCreated(id=job.id, status=job.status, n_trials=job.n_trials)


@router.get("", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(session: SessionDep,
              status_: Annotated[Literal[JOB_STATUSES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
              dataset: Annotated[str | None, Query(max_length=300)] = None,
              submitted_by: Annotated[str | None, Query(max_length=100, description="a user's name")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> JobPage:
    items, total = jobs.list_jobs(session, status_, dataset, limit, offset, submitted_by)
    return JobPage(items=[JobOut.model_validate(j, from_attributes=True) for j in items], total=total,
                   limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobDetail, responses=NO_JOB,
            summary="A job with each trial's status, progress and error")
def get_job(job_id: str, session: SessionDep) -> JobDetail:
    return _detail(jobs.get_job(session, job_id, with_trials=True))


@router.delete("/{job_id}", response_model=JobDetail, responses=errors(403, 404, s404="no job with this id"),
               summary="Cancel a job (its submitter or an admin): running trials are stopped on Ray, finished "
                       "ones kept")
def cancel_job(job_id: str, session: SessionDep, caller: WriterDep) -> JobDetail:
    jobs.cancel_job(session, job_id, caller)
    session.expire_all()
    return _detail(jobs.get_job(session, job_id, with_trials=True))


@router.get("/{job_id}/results", response_model=JobResults | StyleResults,
            summary="Per-variant cross-validation results with corrected and Bayesian tests (a style-transfer "
                    "job: final losses per variant and paired tests against bn)",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                         "text/markdown": {"schema": {"type": "string"}}},
                             "description": "JSON (the schema below), or with format=csv / format=markdown the "
                                            "same table as CSV or Markdown"}, **NO_JOB})
def job_results(job_id: str, session: SessionDep,
                format: Literal["json", "csv", "markdown"] = "json",  # noqa: A002 - the query parameter's name
                rope: RopeQuery = None) -> Any:
    summary = results.job_results_by_id(session, job_id, rope)
    if format == "csv":
        return PlainTextResponse(results.to_csv(summary), media_type="text/csv")
    if format == "markdown":
        return PlainTextResponse(results.to_markdown(summary), media_type="text/markdown")
    return JSONResponse(summary)  # plain JSON types already (typed by the models): skips a model round trip


@router.get("/{job_id}/report", response_class=HTMLResponse,
            summary="A finished job's report: one self-contained HTML page with its table and plots",
            responses={200: {"content": {"text/html": {}}}, **NO_JOB,
                       **errors(409, s409="the job has not finished yet; the message says its status")})
def job_report(job_id: str, session: SessionDep) -> HTMLResponse:
    return HTMLResponse(reports.job_report(session, job_id))


@router.get("/{job_id}/plan", summary="Power planner: the effect this job can detect and the repeats that would "
                                      "detect `effect`", responses=NO_JOB)
def job_plan(job_id: str, session: SessionDep, effect: EffectQuery = DEFAULT_ROPE) -> JSONResponse:
    return JSONResponse(power.job_plan(results.job_results_by_id(session, job_id), effect))
