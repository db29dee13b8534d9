"""Analysis routes: ask for one on a finished job, read it, list a job's (plots: service.api.plots)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, status

from service import analyses
from service.api.contract import errors
from service.api.deps import SessionDep, require_writer
from service.schemas import AnalysisCreated, AnalysisOut, AnalysisRequest

router = APIRouter(tags=["analyses"])

NOT_FOUND = errors(404, s404="no such job or analysis")


@router.post("/jobs/{job_id}/analyses", status_code=status.HTTP_202_ACCEPTED, response_model=AnalysisCreated,
             dependencies=[Depends(require_writer)],
             responses=errors(400, 404, 409, 422, s404="no such job", s409="the job has not succeeded",
                              s422="an unknown kind or block, a ratio outside [0, 1], or a job without gated "
                                   "variants"),
             summary="Queue an analysis of a succeeded job's trained trials (pruning or channel_weights)")
def create_analysis(job_id: str, request: AnalysisRequest, session: SessionDep) -> AnalysisCreated:
    analysis = analyses.create_analysis(session, job_id, request)
    return AnalysisCreated(id=analysis.id, job_id=job_id, kind=analysis.kind, status=analysis.status)


@router.get("/jobs/{job_id}/analyses", response_model=list[AnalysisOut], responses=NOT_FOUND,
            summary="A job's analyses, oldest first")
def list_analyses(job_id: str, session: SessionDep) -> list[AnalysisOut]:
    return [AnalysisOut(**analyses.describe(a)) for a in analyses.list_analyses(session, job_id)]


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut, responses=NOT_FOUND,
            summary="An analysis: status, per-trial progress and, once done, its result")
def get_analysis(analysis_id: str, session: SessionDep) -> AnalysisOut:
    return AnalysisOut(**analyses.describe(analyses.get_analysis(session, analysis_id)))
