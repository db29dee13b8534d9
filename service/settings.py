"""Service settings, read from the environment each time they are asked for (``workers.settings``).

Reading at call time (not import time) lets tests and the CLI point one process at a
fresh home or database without reloading modules.
"""
from __future__ import annotations

# One definition of every setting and of where things live on disk, shared with the workers.
from workers.paths import data_dir, home
from workers.settings import current

__all__ = ["api_token", "current", "data_dir", "database_url", "home", "lease_seconds", "poll_seconds"]


def database_url() -> str:
    """SQLAlchemy URL: SRM_BENCH_DATABASE_URL, or an SQLite file under the home."""
    url = current().database_url
    if url:
        if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return url
    home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home() / 'srm_bench.db'}"


def api_token() -> str | None:
    """Bearer token that writes must carry; None leaves writes open."""
    return current().api_token


def lease_seconds() -> float:
    """How long a dispatcher's claim on a job lasts without a heartbeat before another may take it."""
    return current().lease_s


def poll_seconds() -> float:
    """How often an idle dispatcher looks for queued jobs."""
    return current().poll_s
