"""Read-only routes: presets, models, datasets, protocols, leaderboard, health."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from service import catalog, health, presets, results
from service.api.deps import SessionDep
from service.result_schemas import LeaderboardBoard, StyleLeaderboardBoard

router = APIRouter(tags=["catalog"])


@router.get("/presets", summary="The paper's experiments (Tables 1-7) as job specs")
def list_presets() -> list[dict]:
    return presets.list_presets()


@router.get("/models", summary="Model names and recalibration kinds (plugins included); a backbone plus a "
                               "variant picks a model")
def list_models() -> dict:
    return catalog.models()


@router.get("/datasets", summary="Datasets, the data each needs and whether it is present")
def list_datasets() -> list[dict]:
    return catalog.datasets()


@router.get("/protocols", summary="Training protocols and their fields")
def list_protocols() -> dict:
    return catalog.protocols()


Filter = Annotated[str | None, Query(max_length=300)]


@router.get("/leaderboard", response_model=list[LeaderboardBoard] | list[StyleLeaderboardBoard],
            summary="Variants pooled over all finished jobs with the same protocol hash, best first "
                    "(task=style_transfer: style jobs, by final total loss, lowest first)")
def leaderboard(session: SessionDep, dataset: Filter = None, backbone: Filter = None,
                protocol: Filter = None,
                task: Literal["classification", "style_transfer"] = "classification") -> Any:
    # plain JSON types already (typed by the models): sent as they are, without a model round trip
    if task == "style_transfer":  # kept apart: ranked by final total loss, lower first
        from service.style.leaderboard import style_leaderboard

        return JSONResponse(style_leaderboard(session, dataset, protocol))
    return JSONResponse(results.leaderboard(session, dataset, backbone, protocol))


class Check(BaseModel):
    model_config = ConfigDict(extra="allow")  # each check adds what it found (address, error, ...)
    ok: bool


class Health(BaseModel):
    ok: bool = Field(description="every check is ok")
    checks: dict[str, Check] = Field(description="database, ray, mlflow")


health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", response_model=Health, summary="Whether the database, Ray and MLflow are reachable",
                   responses={503: {"model": Health, "description": "some check failed; its entry says why"}})
def healthz(session: SessionDep) -> Any:
    checks = health.check_all(session)
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse(status_code=200 if ok else 503, content={"ok": ok, "checks": checks})
