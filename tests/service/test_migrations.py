"""The schema changes only through Alembic: upgrade, downgrade, and no drift from the models."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from service import db
from service.models import LEADERBOARD_COLUMNS, Base
from service.results import _leaderboard_query
from tests.databases import empty_database

TABLES = {"studies", "jobs", "trials", "variant_summaries", "analyses", "analysis_trials", "users",
          "leaderboard_rows"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    with empty_database(request.param, tmp_path, "srm_bench_mig") as url:
        yield url


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_then_downgrade_then_upgrade(empty_url):
    db.upgrade(empty_url)
    assert _tables(empty_url) == TABLES
    db.downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    db.upgrade(empty_url)
    assert _tables(empty_url) == TABLES


def test_models_and_migrations_do_not_drift(empty_url):
    db.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
    assert version == ScriptDirectory.from_config(db.alembic_config(empty_url)).get_current_head()


def test_downgrading_the_progress_columns_keeps_the_rows(empty_url):
    db.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO jobs (id, spec, status, dataset, backbone, protocol, protocol_hash, "
                                "n_trials, cancel_requested, created_at) VALUES ('j', '{}', 'running', 'd', 'b', "
                                "'quick', 'h', 1, false, CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO trials (job_id, variant, seed, spec, content_hash, status, attempts, "
                                "reused, progress, epoch, val_top1) VALUES ('j', 'srm', 0, '{}', 'c', 'running', 1, "
                                "false, 0.5, 3, 61.0)"))
    db.downgrade(empty_url, "0001")
    columns = {c["name"] for c in inspect(engine).get_columns("trials")}
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT variant, status FROM trials")).all()
    db.upgrade(empty_url)
    with engine.connect() as connection:
        after = connection.execute(text("SELECT progress, epoch, val_top1 FROM trials")).all()
    engine.dispose()
    assert not {"progress", "epoch", "val_top1"} & columns
    assert [tuple(row) for row in kept] == [("srm", "running")]
    assert [tuple(row) for row in after] == [(None, None, None)]


def test_indexes_for_results_and_leaderboard_exist(empty_url):
    db.upgrade(empty_url)
    engine = create_engine(empty_url)
    inspector = inspect(engine)
    trial_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("trials")}
    summary_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("variant_summaries")}
    engine.dispose()
    assert ("job_id", "variant") in trial_indexes
    assert ("content_hash", "status") in trial_indexes
    assert LEADERBOARD_COLUMNS in summary_indexes


def test_sqlite_answers_the_leaderboard_from_the_covering_index(tmp_path):
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    db.upgrade(url)
    engine = create_engine(url)
    compiled = _leaderboard_query(("dataset", "backbone")).compile(dialect=engine.dialect)
    params = compiled.construct_params({"dataset": "textures", "backbone": "cifar_resnet20"})
    with engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                          tuple(params[name] for name in compiled.positiontup)).all()
    engine.dispose()
    details = " | ".join(str(row[-1]) for row in plan)
    assert "COVERING INDEX ix_summaries_leaderboard_covering" in details, details
