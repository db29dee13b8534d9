"""Throw-away PostgreSQL databases for tests that need one of their own."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import PG_ADMIN_URL


@contextmanager
def fresh_database(prefix: str = "srm_bench_t") -> Iterator[str]:
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
