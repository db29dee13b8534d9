"""Reachability checks for /healthz: the database, Ray and MLflow."""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def check_database(session: Session) -> dict[str, Any]:
    try:
        session.execute(text("SELECT 1"))
        return {"ok": True, "url": session.get_bind().url.render_as_string(hide_password=True)}
    except Exception as err:
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}


def check_ray() -> dict[str, Any]:
    """RAY_ADDRESS unset means a local Ray started on demand; otherwise the head must accept us."""
    from workers import ray_cluster

    return ray_cluster.status()


def check_mlflow() -> dict[str, Any]:
    from workers.tracking import tracking_uri

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=3) as response:
                return {"ok": response.status == 200, "uri": uri}
        except OSError as err:
            return {"ok": False, "uri": uri, "error": str(err)}
    path = Path(uri.split(":///", 1)[-1] if ":///" in uri else uri.removeprefix("file:"))
    folder = path if path.is_dir() else path.parent
    ok = os.access(folder, os.W_OK) if folder.exists() else os.access(_existing_parent(folder), os.W_OK)
    return {"ok": ok, "uri": uri} | ({} if ok else {"error": f"{folder} is not writable"})


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_all(session: Session) -> dict[str, dict[str, Any]]:
    checks = {"database": check_database(session), "ray": check_ray()}
    try:
        checks["mlflow"] = check_mlflow()
    except Exception as err:
        checks["mlflow"] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    return checks
