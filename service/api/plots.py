"""Every plot of the API: /v1/{jobs|studies|analyses}/{id}/plots/{name}.png."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from service import studies
from service.api.deps import SessionDep

router = APIRouter(tags=["plots"])
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"},
       404: {"description": "no such study, or no plot of that name"},
       409: {"description": "the plot cannot be drawn from the results so far (the body says why)"}}
STUDY_PLOTS = {"cd": studies.cd_png}


@router.get("/studies/{study_id}/plots/{name}.png", response_class=Response, responses=PNG,
            summary="A study's plot: cd (critical difference diagram of the average ranks)")
def study_plot(study_id: str, name: str, session: SessionDep) -> Response:
    if name not in STUDY_PLOTS:
        raise HTTPException(404, detail=f"no study plot {name!r}; valid plots: {', '.join(STUDY_PLOTS)}")
    return Response(STUDY_PLOTS[name](session, study_id), media_type="image/png")


