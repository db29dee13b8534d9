"""One Settings object, read from the environment on every call."""
from __future__ import annotations

from pathlib import Path

import pytest

from workers import settings


def test_defaults_and_a_change_seen_by_the_next_call(monkeypatch, tmp_path):
    for variable in ("SRM_BENCH_HOME", "SRM_BENCH_DATA_DIR", "SRM_BENCH_DATABASE_URL", "MLFLOW_TRACKING_URI",
                     "RAY_ADDRESS", "SRM_BENCH_URL", "SRM_BENCH_API_TOKEN", "SRM_BENCH_LEASE_S", "SRM_BENCH_POLL_S",
                     "SRM_BENCH_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    now = settings.current()
    assert now.home == tmp_path / ".srm-bench" and now.data_dir == tmp_path / ".srm-bench" / "data"
    assert (now.database_url, now.mlflow_tracking_uri, now.ray_address, now.api_token) == (None, None, None, None)
    assert (now.lease_s, now.poll_s, now.plugins) == (30.0, 1.0, ())
    monkeypatch.setenv("SRM_BENCH_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SRM_BENCH_PLUGINS", "a.b, c ,")
    monkeypatch.setenv("SRM_BENCH_LEASE_S", "2.5")
    later = settings.current()
    assert later.home == Path(tmp_path / "h") and later.data_dir == tmp_path / "h" / "data"
    assert later.plugins == ("a.b", "c") and later.lease_s == 2.5


def test_a_bad_number_names_the_variable(monkeypatch):
    monkeypatch.setenv("SRM_BENCH_POLL_S", "soon")
    with pytest.raises(ValueError, match="SRM_BENCH_POLL_S='soon' is not valid; give a number of seconds"):
        settings.current()
