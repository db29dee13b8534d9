"""Study routes: one comparison over several datasets (a job per dataset), ranked across them."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.responses import HTMLResponse, JSONResponse

from service import studies, study_reports
from service.api.deps import NOT_FOUND_OR_INVALID, EffectQuery, RopeQuery, SessionDep, require_writer
from service.schemas import DEFAULT_ROPE, StudyDetail, StudyJob, StudyOut, StudyPage, StudyRequest

router = APIRouter(prefix="/studies", tags=["studies"])
NOT_FOUND = {404: {"description": "no such study"}}


def _out(study) -> StudyOut:
    return StudyOut(id=study.id, name=study.name, status=studies.status(study), datasets=studies.datasets(study),
                    created_at=study.created_at)


def _detail(study) -> StudyDetail:
    return StudyDetail(**_out(study).model_dump(), spec=study.spec,
                       jobs=[StudyJob(id=j.id, dataset=j.dataset, status=j.status, n_trials=j.n_trials)
                             for j in studies.jobs_in_order(study)])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StudyDetail,
             dependencies=[Depends(require_writer)],
             responses={409: {"description": "the Idempotency-Key was used with another body"},
                        422: {"description": "a field that cannot run, named in the body"}},
             summary="Submit a study: the same comparison on 2 or more datasets, one job each, in one transaction")
def submit_study(request: StudyRequest, session: SessionDep, response: Response,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> StudyDetail:
    spec, planned = studies.plan(request)
    study, created = studies.create_study(session, spec, planned, idempotency_key)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _detail(study)


@router.get("", response_model=StudyPage, summary="List studies, newest first")
def list_studies(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                 offset: Annotated[int, Query(ge=0)] = 0) -> StudyPage:
    items, total = studies.list_studies(session, limit, offset)
    return StudyPage(items=[_out(s) for s in items], total=total, limit=limit, offset=offset)


@router.get("/{study_id}", response_model=StudyDetail, responses=NOT_FOUND,
            summary="A study with its jobs and their status")
def get_study(study_id: str, session: SessionDep) -> StudyDetail:
    return _detail(studies.get_study(session, study_id))


@router.delete("/{study_id}", response_model=StudyDetail, dependencies=[Depends(require_writer)],
               responses=NOT_FOUND, summary="Cancel a study's jobs (finished trials are kept)")
def cancel_study(study_id: str, session: SessionDep) -> StudyDetail:
    return _detail(studies.cancel_study(session, study_id))


@router.get("/{study_id}/results", responses=NOT_FOUND_OR_INVALID,
            summary="Per-dataset results, average ranks, Friedman, Nemenyi and Holm-corrected Wilcoxon, groups")
def study_results(study_id: str, session: SessionDep, rope: RopeQuery = None) -> JSONResponse:
    return JSONResponse(studies.study_results(session, study_id, rope))


@router.get("/{study_id}/plan", responses=NOT_FOUND_OR_INVALID,
            summary="Power planner for every dataset's job of the study")
def study_plan(study_id: str, session: SessionDep, effect: EffectQuery = DEFAULT_ROPE) -> JSONResponse:
    return JSONResponse(studies.study_plan(session, study_id, effect))


@router.get("/{study_id}/report", response_class=HTMLResponse,
            summary="A finished study's report: rank table, critical difference diagram, each dataset's table",
            responses={200: {"content": {"text/html": {}}}, 404: {"description": "no study with this id"},
                       409: {"description": "a job of the study has not ended yet; the message says so"}})
def study_report(study_id: str, session: SessionDep) -> HTMLResponse:
    return HTMLResponse(study_reports.study_report(session, study_id))
