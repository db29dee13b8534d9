"""Where a succeeded trial's final weights are kept, and loading them back for analyses.

The trial's last checkpoint (model, optimizer, ...) is logged to its MLflow run; its address is
``runs:/<run id>/checkpoint/last.pt``. When MLflow did not take it (unreachable, or checkpoint
logging switched off), the model's state dict alone is kept at
``$SRM_BENCH_HOME/models/<content hash>.pt`` and the address is that file's ``file://`` URI.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from . import paths

CHECKPOINT_ARTIFACT = "checkpoint/last.pt"


class WeightsMissing(FileNotFoundError):
    """A trial's weights are not where SQL says they are (or SQL has no address for them)."""


def mlflow_uri(run_id: str) -> str:
    return f"runs:/{run_id}/{CHECKPOINT_ARTIFACT}"


def keep_locally(checkpoint_file: str | Path, content_hash: str) -> str:
    """The checkpoint's model state dict as ``models/<content hash>.pt`` under the home; its URI."""
    state = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    folder = paths.home() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{content_hash}.pt"
    partial = folder / f".{content_hash}.pt.partial"
    torch.save(state.get("model", state), partial)
    os.replace(partial, target)
    return target.as_uri()


def load_state_dict(uri: str | None, tracking_uri: str | None = None) -> dict:
    """The model state dict at ``uri`` (``runs:/...`` or ``file://...``); WeightsMissing saying why not.

    ``tracking_uri`` is the MLflow store that knows the run; a Ray worker does not share the
    driver's environment, so the driver passes its own (default: this process's).
    """
    if not uri:
        raise WeightsMissing("no weights were recorded for this trial (it ran before weights were kept, "
                             "or its checkpoint could not be stored)")
    try:
        if uri.startswith("runs:/"):
            from mlflow.artifacts import download_artifacts

            from .tracking import tracking_uri as default_tracking_uri

            with tempfile.TemporaryDirectory(prefix="srm-weights-") as folder:
                local = download_artifacts(artifact_uri=uri, dst_path=folder,
                                           tracking_uri=tracking_uri or default_tracking_uri())
                state = torch.load(local, map_location="cpu", weights_only=False)
        else:
            path = Path(uri.removeprefix("file://"))
            state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # missing file, deleted run, unreachable MLflow: all the same to the caller
        raise WeightsMissing(f"the weights at {uri} cannot be read: {type(err).__name__}: {err}") from err
    return state["model"] if "model" in state and isinstance(state["model"], dict) else state


def keep(checkpoint_file: str | Path | None, content_hash: str, run_id: str | None,
         logged_to_mlflow: bool) -> str | None:
    """The address of a just-succeeded trial's weights: its MLflow artifact when MLflow took the
    checkpoint, else a local copy; None when there is no checkpoint to keep."""
    if logged_to_mlflow and run_id:
        return mlflow_uri(run_id)
    if checkpoint_file and Path(checkpoint_file).is_file():
        return keep_locally(checkpoint_file, content_hash)
    return None
