"""Read-only routes: presets, models, datasets, protocols, leaderboard, health."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service import catalog, health, presets, results
from service.api.deps import SessionDep

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


@router.get("/leaderboard", summary="Variants pooled over all finished jobs with the same protocol hash, best first")
def leaderboard(session: SessionDep, dataset: str | None = None, backbone: str | None = None,
                protocol: str | None = None,
                task: Literal["classification", "style_transfer"] = "classification") -> JSONResponse:
    if task == "style_transfer":  # kept apart: ranked by final total loss, lower first (service.style.leaderboard)
        from service.style.leaderboard import style_leaderboard

        return JSONResponse(style_leaderboard(session, dataset, protocol))
    return JSONResponse(results.leaderboard(session, dataset, backbone, protocol))  # plain JSON types already


health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", summary="Whether the database, Ray and MLflow are reachable")
def healthz(session: SessionDep) -> JSONResponse:
    checks = health.check_all(session)
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse(status_code=200 if ok else 503, content={"ok": ok, "checks": checks})
