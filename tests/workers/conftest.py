"""Fixtures for the workers tests: an empty data dir, one torch thread."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Four engineers share two cores: one torch thread keeps the tests from fighting."""
    torch.set_num_threads(1)


@pytest.fixture()
def data_dir(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def mlflow_home(tmp_path_factory):
    """One SRM_BENCH_HOME (and so one SQLite MLflow store) per test module: creating the
    store's tables takes seconds, too long to repeat for every test."""
    home = tmp_path_factory.mktemp("srm-bench-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SRM_BENCH_HOME", str(home))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("SRM_BENCH_DATA_DIR", raising=False)
        yield home
