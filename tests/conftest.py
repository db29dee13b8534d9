"""Session-wide real services for the tests: one local Ray, one throw-away PostgreSQL database.

Fixtures start what they stand for only when a test asks for it, so `pytest tests/srm_models`
needs neither Ray nor PostgreSQL.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.databases import fresh_database

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def srm_cpu_kernels_built():
    """Compile SRM's CPU kernels once, before any test or Ray worker process needs them."""
    from srm_models.ops import cpu_kernels
    return cpu_kernels.load()


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for the whole session; subprocesses reach it through RAY_ADDRESS."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray workers import the test plugins (tests/plugins) as a cluster's workers import a user's:
    # from their Python path (docs/models.md, "Bring your own module").
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, paths)])
    # Ray's socket paths must stay under 107 bytes: pytest's tmp dirs under xdist (popen-gwN) come close.
    temp_dir = tempfile.mkdtemp(prefix="srm-ray-")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    address = ray.get_runtime_context().gcs_address
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = address
    yield address
    if previous is None:
        os.environ.pop("RAY_ADDRESS", None)
    else:
        os.environ["RAY_ADDRESS"] = previous
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    pytest.importorskip("psycopg")
    with fresh_database("srm_bench_test") as url:
        yield url


@pytest.fixture()
def srm_home(tmp_path, monkeypatch):
    """An empty SRM_BENCH_HOME for one test (SQLite, MLflow store, checkpoints live under it)."""
    home = tmp_path / "srm-bench-home"
    home.mkdir()
    monkeypatch.setenv("SRM_BENCH_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SRM_BENCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("SRM_BENCH_DATA_DIR", raising=False)
    return home


@pytest.fixture()
def isolated_kinds(monkeypatch):
    """Kinds registered during the test (a test plugin's) are gone afterwards, and its module
    is imported afresh next time, so other tests see only the built-in kinds."""
    from srm_models.layers import kinds

    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    yield
    for name in [m for m in sys.modules if m.startswith("tests.plugins.")]:
        del sys.modules[name]
