"""Service settings, read from the environment each time they are asked for.

Reading at call time (not import time) lets tests and the CLI point one process at a
fresh home or database without reloading modules.
"""
from __future__ import annotations

import os

# One definition of where things live on disk, shared with the workers that write there.
from workers.paths import data_dir, home

__all__ = ["api_token", "data_dir", "database_url", "home", "lease_seconds", "poll_seconds"]


def database_url() -> str:
    """SQLAlchemy URL: SRM_BENCH_DATABASE_URL, or an SQLite file under the home."""
    url = os.environ.get("SRM_BENCH_DATABASE_URL")
    if url:
        if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return url
    home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home() / 'srm_bench.db'}"


def api_token() -> str | None:
    """Bearer token that writes must carry; None leaves writes open."""
    return os.environ.get("SRM_BENCH_API_TOKEN") or None


def lease_seconds() -> float:
    """How long a dispatcher's claim on a job lasts without a heartbeat before another may take it."""
    return float(os.environ.get("SRM_BENCH_LEASE_S", "30"))


def poll_seconds() -> float:
    """How often an idle dispatcher looks for queued jobs."""
    return float(os.environ.get("SRM_BENCH_POLL_S", "1.0"))
