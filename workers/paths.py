"""Where SRM Bench keeps things on disk, resolved from the settings each time it is asked.

Read per call (not at import) so tests and the service can point a process at another home.
"""
from __future__ import annotations

from pathlib import Path

from . import settings


def home() -> Path:
    """``SRM_BENCH_HOME`` (default ``./.srm-bench``), as an absolute path."""
    return settings.current().home


def data_dir() -> Path:
    """``SRM_BENCH_DATA_DIR`` (default ``$SRM_BENCH_HOME/data``): where dataset loaders look."""
    return settings.current().data_dir


def checkpoints_dir() -> Path:
    """Per-trial checkpoint folders for trials run outside Ray Tune."""
    return home() / "checkpoints"


def ray_storage_dir() -> Path:
    """Ray Tune experiment storage: trial checkpoints and the state ``Tuner.restore`` needs."""
    return home() / "ray_results"


def mlflow_dir() -> Path:
    """The default local MLflow store (used when ``MLFLOW_TRACKING_URI`` is unset)."""
    return home()
