"""Throw-away databases for the tests: a SQLite file, or a PostgreSQL database of their own."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ADMIN_URL = os.environ.get("SRM_BENCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(prefix: str = "srm_bench_t") -> Iterator[str]:
    """A new PostgreSQL database (SQLAlchemy URL, psycopg 3), dropped on exit."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def empty_database(kind: str, folder: Path, prefix: str) -> Iterator[str]:
    """An empty database of ``kind`` ("sqlite": a file in ``folder``; "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / (prefix + '.db')}"
    else:
        with fresh_database(prefix) as url:
            yield url
