"""Every SRM Bench setting, read from the environment each time ``current()`` is called.

Reading per call (not at import) lets tests and the CLI point one process at a fresh home,
database or tracking store without reloading modules. ``srm_models`` keeps its own kernel
switch (it depends on torch alone); everything in ``workers`` and ``service`` reads here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PLUGINS_VARIABLE = "SRM_BENCH_PLUGINS"


@dataclass(frozen=True)
class Settings:
    home: Path                        # SRM_BENCH_HOME, default ./.srm-bench (absolute)
    data_dir: Path                    # SRM_BENCH_DATA_DIR, default $SRM_BENCH_HOME/data
    database_url: str | None          # SRM_BENCH_DATABASE_URL; None: SQLite under the home (service)
    mlflow_tracking_uri: str | None   # MLFLOW_TRACKING_URI; None: SQLite under the home (workers)
    ray_address: str | None           # RAY_ADDRESS; None: a local Ray started on demand
    api_url: str | None               # SRM_BENCH_URL: where the CLI's client sends requests
    api_token: str | None             # SRM_BENCH_API_TOKEN: bearer token writes must carry
    lease_s: float                    # SRM_BENCH_LEASE_S: a dispatcher's claim without a heartbeat
    poll_s: float                     # SRM_BENCH_POLL_S: how often an idle dispatcher looks for jobs
    plugins: tuple[str, ...]          # SRM_BENCH_PLUGINS: modules that register recalibration kinds
    max_running_jobs: int             # SRM_BENCH_MAX_RUNNING_JOBS: jobs one dispatcher runs at once
    max_trials_per_job: int           # SRM_BENCH_MAX_TRIALS_PER_JOB: a bigger job is refused (422)
    max_queued_jobs_per_user: int     # SRM_BENCH_MAX_QUEUED_JOBS_PER_USER: beyond it, 429 until some start
    read_token_required: bool         # SRM_BENCH_READ_TOKEN_REQUIRED=1: reads need a token too


def _number(variable: str, default: str) -> float:
    raw = os.environ.get(variable) or default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not valid; give a number of seconds") from None


def _count(variable: str, default: int) -> int:
    raw = os.environ.get(variable) or str(default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{variable}={raw!r} is not valid; give a whole number of at least 1")
    return value


def _flag(variable: str) -> bool:
    raw = (os.environ.get(variable) or "0").strip().lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"{variable}={raw!r} is not valid; give 1 or 0")
    return raw in ("1", "true", "yes")


def current() -> Settings:
    """The settings as the environment says now."""
    env = os.environ
    home = Path(env.get("SRM_BENCH_HOME") or ".srm-bench").expanduser().resolve()
    data_dir = env.get("SRM_BENCH_DATA_DIR")
    return Settings(
        home=home,
        data_dir=Path(data_dir).expanduser().resolve() if data_dir else home / "data",
        database_url=env.get("SRM_BENCH_DATABASE_URL") or None,
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
        ray_address=env.get("RAY_ADDRESS") or None,
        api_url=env.get("SRM_BENCH_URL") or None,
        api_token=env.get("SRM_BENCH_API_TOKEN") or None,
        lease_s=_number("SRM_BENCH_LEASE_S", "30"),
        poll_s=_number("SRM_BENCH_POLL_S", "1.0"),
        plugins=tuple(name.strip() for name in env.get(PLUGINS_VARIABLE, "").split(",") if name.strip()),
        max_running_jobs=_count("SRM_BENCH_MAX_RUNNING_JOBS", 4),
        max_trials_per_job=_count("SRM_BENCH_MAX_TRIALS_PER_JOB", 500),
        max_queued_jobs_per_user=_count("SRM_BENCH_MAX_QUEUED_JOBS_PER_USER", 50),
        read_token_required=_flag("SRM_BENCH_READ_TOKEN_REQUIRED"),
    )
