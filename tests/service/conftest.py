"""Fixtures for the service tests: every database test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from service import db

TINY_DATASET = "textures[n_per_class=8,image_size=16]"


@pytest.fixture(scope="session")
def pg_schema_url(postgres_url):
    """The session's PostgreSQL database, migrated to head once."""
    db.upgrade(postgres_url)
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A migrated, empty database: a fresh SQLite file, or the session PostgreSQL emptied after the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'service.db'}"
        db.upgrade(url)
        yield url
        return
    url = request.getfixturevalue("pg_schema_url")
    yield url
    with db.session_factory(url)() as session:
        session.execute(text("TRUNCATE leaderboard_rows, variant_summaries, trials, jobs, studies, users CASCADE"))
        session.commit()


@pytest.fixture()
def sessions(db_url):
    return db.session_factory(db_url)


@pytest.fixture()
def client(db_url, srm_home, monkeypatch):
    """The real app in-process (no dispatcher): for validation and reads that need no Ray."""
    from fastapi.testclient import TestClient

    from service.api import create_app

    monkeypatch.delenv("SRM_BENCH_API_TOKEN", raising=False)
    with TestClient(create_app(db_url)) as test_client:
        yield test_client
