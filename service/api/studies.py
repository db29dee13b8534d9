"""Study routes: one comparison over several datasets (a job per dataset), ranked across them."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import HTMLResponse, JSONResponse

from service import quotas, studies, study_reports
from service.api.contract import errors
from service.api.deps import MAX_OFFSET, EffectQuery, RopeQuery, SessionDep, WriterDep
from service.schemas import DEFAULT_ROPE, StudyDetail, StudyJob, StudyOut, StudyPage, StudyRequest

router = APIRouter(prefix="/studies", tags=["studies"])
NOT_FOUND = errors(404, s404="no study with this id")


def _out(study) -> StudyOut:
    return StudyOut(id=study.id, name=study.name, submitted_by=study.submitted_by, status=studies.status(study),
                    datasets=studies.datasets(study), created_at=study.created_at)


def _detail(study) -> StudyDetail:
    return StudyDetail(**_out(study).model_dump(), spec=study.spec,
                       jobs=[StudyJob(id=j.id, dataset=j.dataset, status=j.status, n_trials=j.n_trials)
                             for j in studies.jobs_in_order(study)])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StudyDetail,
             responses=errors(400, 409, 429, s409="the Idempotency-Key was used with another body",
                              s429="the study's jobs would pass this user's queued-jobs limit; retry after "
                                   "Retry-After seconds"),
             summary="Submit a study: the same comparison on 2 or more datasets, one job each, in one transaction")
def submit_study(request: StudyRequest, session: SessionDep, response: Response, caller: WriterDep,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> StudyDetail:
    spec, planned = studies.plan(request)
    quotas.check_trials(planned, field_of=lambda index: f"datasets.{index}")
    study, created = studies.create_study(
        session, spec, planned, idempotency_key, submitted_by=caller.name,
        before_insert=lambda: quotas.check_queue(session, caller, len(planned)))  # a study: one job per dataset
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _detail(study)


@router.get("", response_model=StudyPage, summary="List studies, newest first")
def list_studies(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> StudyPage:
    items, total = studies.list_studies(session, limit, offset)
    return StudyPage(items=[_out(s) for s in items], total=total, limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyDetail, responses=NOT_FOUND,
            summary="A study with its jobs and their status")
def get_study(study_id: str, session: SessionDep) -> StudyDetail:
    return _detail(studies.get_study(session, study_id))


@router.delete("/{study_id}", response_model=StudyDetail, responses=errors(403, 404, s404="no study with this id"),
               summary="Cancel a study's jobs (its submitter or an admin; finished trials are kept)")
def cancel_study(study_id: str, session: SessionDep, caller: WriterDep) -> StudyDetail:
    return _detail(studies.cancel_study(session, study_id, caller))


@router.get("/{study_id}/results", responses=NOT_FOUND,
            summary="Per-dataset results, average ranks, Friedman, Nemenyi and Holm-corrected Wilcoxon, groups")
def study_results(study_id: str, session: SessionDep, rope: RopeQuery = None) -> JSONResponse:
    return JSONResponse(studies.study_results(session, study_id, rope))


@router.get("/{study_id}/plan", responses=NOT_FOUND,
            summary="Power planner for every dataset's job of the study")
def study_plan(study_id: str, session: SessionDep, effect: EffectQuery = DEFAULT_ROPE) -> JSONResponse:
    return JSONResponse(studies.study_plan(session, study_id, effect))


@router.get("/{study_id}/report", response_class=HTMLResponse,
            summary="A finished study's report: rank table, critical difference diagram, each dataset's table",
            responses={200: {"content": {"text/html": {}}}, **NOT_FOUND,
                       **errors(409, s409="a job of the study has not ended yet; the message says so")})
def study_report(study_id: str, session: SessionDep) -> HTMLResponse:
    return HTMLResponse(study_reports.study_report(session, study_id))
