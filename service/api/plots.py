"""Every plot of the API: /v1/{jobs|studies|analyses}/{id}/plots/{name}.png."""
from __future__ import annotations

from pathlib import Path as FilePath

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse, Response

from service import analyses, studies
from service.api.contract import errors
from service.api.deps import SessionDep
from service.errors import JobNotFound

router = APIRouter(tags=["plots"])
PNG = {200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
             "description": "a PNG image"},
       **errors(404, 409, s404="no such study, or no plot of that name",
                s409="the plot cannot be drawn from the results so far (the body says why)")}
STUDY_PLOTS = {"cd": studies.cd_png}
JOB_PNG = {**PNG, **errors(404, s404="no such job, no plot of that name, or a plot of the other task")}


@router.get("/studies/{study_id}/plots/{name}.png", response_class=Response, responses=PNG,
            summary="A study's plot: cd (critical difference diagram of the average ranks)")
def study_plot(study_id: str, name: str, session: SessionDep) -> Response:
    if name not in STUDY_PLOTS:
        raise HTTPException(404, detail=f"no study plot {name!r}; valid plots: {', '.join(STUDY_PLOTS)}")
    return Response(STUDY_PLOTS[name](session, study_id), media_type="image/png")


@router.get("/jobs/{job_id}/plots/{name}.png", response_class=Response, responses=JOB_PNG,
            summary="A style-transfer job's plot: curves (style and content loss) or stylized (the grid)")
def job_plot(job_id: str, name: str, session: SessionDep) -> Response:
    from service.style.plots import JOB_PLOTS

    if name not in JOB_PLOTS:
        raise HTTPException(404, detail=f"no job plot {name!r}; valid plots: {', '.join(JOB_PLOTS)}")
    try:
        return Response(JOB_PLOTS[name](session, job_id), media_type="image/png")
    except LookupError as error:
        if isinstance(error, JobNotFound):
            raise
        raise HTTPException(404, detail=str(error)) from error


@router.get("/analyses/{analysis_id}/plots/{name}.png", response_class=FileResponse,
            responses={200: PNG[200], **errors(404, s404="no such analysis, or no plot of that name yet")},
            summary="An analysis's plot (names in its `plots` list): pruning; correlation, top_images")
def analysis_plot(analysis_id: str, session: SessionDep, name: str = Path(pattern=r"^[a-z_]+$")) -> FileResponse:
    plots = analyses.get_analysis(session, analysis_id).plots or {}
    if name not in plots or not FilePath(plots[name]).is_file():
        raise HTTPException(404, detail=f"analysis {analysis_id} has no plot {name!r}; "
                                        f"its plots: {', '.join(sorted(plots)) or 'none yet'}")
    return FileResponse(plots[name], media_type="image/png")
