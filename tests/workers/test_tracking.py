"""MLflow records in a real local store: nesting, params, tags, curves, artifacts, summaries."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

from tests.workers.specs import tiny_spec
from workers import tracking
from workers.trial import run_trial


@pytest.fixture(scope="module")
def finished_trial(tmp_path_factory):
    """One real one-epoch trial and its checkpoint, shared by the tests of this module."""
    spec = tiny_spec("srm", fold=2, epochs=1)
    folder = tmp_path_factory.mktemp("trial")
    return spec, run_trial(spec, data_dir=folder, checkpoint_dir=folder / "ckpt")


def test_tracking_uri_defaults_to_sqlite_under_home(srm_home, monkeypatch):
    assert tracking.tracking_uri() == f"sqlite:///{srm_home / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri() == "http://mlflow.example:5000"


def test_trial_run_is_nested_under_its_job_with_everything_recorded(mlflow_home, finished_trial, tmp_path):
    spec, result = finished_trial
    parent = tracking.start_job_run("job-1", "my job", {"dataset": spec.dataset, "variants": ["srm"]})
    run_id = tracking.log_trial(parent, spec, result)
    client = MlflowClient(tracking.tracking_uri())
    run = client.get_run(run_id)
    assert run.data.tags[tracking.PARENT_TAG] == parent and run.info.status == "FINISHED"
    assert {k: run.data.tags[k] for k in ("variant", "dataset", "backbone", "repeat", "fold", "seed",
                                             "job_id")} == {
        "variant": "srm", "dataset": spec.dataset, "backbone": "cifar_resnet20", "repeat": "0", "fold": "2",
        "seed": "0",
        "job_id": "job-1"}
    params = run.data.params
    assert params["dataset_fingerprint"] == result["dataset_fingerprint"]
    assert params["split_hash"] == result["split_hash"] and params["code_version"]
    assert params["spec.variant.kind"] == "srm" and params["protocol.lr"] == "0.05"
    assert run.data.metrics["top1"] == pytest.approx(result["top1"])
    curve = client.get_metric_history(run_id, "val_top1")
    assert [m.step for m in curve] == [1]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "training_curve.png" in artifacts
    with Image.open(client.download_artifacts(run_id, "training_curve.png", str(tmp_path))) as plot:
        assert plot.format == "PNG" and plot.width > 300
    assert [a.path for a in client.list_artifacts(run_id, "checkpoint")] == ["checkpoint/last.pt"]
    assert Path(mlflow_home / "mlartifacts").is_dir()
    assert client.get_run(parent).data.params["job.dataset"] == spec.dataset


def test_checkpoint_upload_can_be_turned_off(mlflow_home, finished_trial):
    spec, result = finished_trial
    result = {**result, "protocol": {**result["protocol"], "log_checkpoint": False}}
    run_id = tracking.log_trial(tracking.start_job_run("job-2", "no ckpt", {}), spec, result)
    paths = {a.path for a in MlflowClient(tracking.tracking_uri()).list_artifacts(run_id)}
    assert "training_curve.png" in paths and "checkpoint" not in paths


def test_variant_summaries_make_a_leaderboard(mlflow_home, finished_trial):
    spec, result = finished_trial
    parent = tracking.start_job_run("job-3", "summary", {})
    pairs = [(dataclasses.replace(spec, variant={"kind": kind}, fold=fold), {**result, "top1": top1})
             for kind, fold, top1 in [("baseline", 0, 50.0), ("baseline", 1, 54.0), ("srm", 0, 60.0), ("srm", 1, 62.0)]]
    run_ids = tracking.log_variant_summaries(parent, pairs)
    client = MlflowClient(tracking.tracking_uri())
    srm = client.get_run(run_ids["srm"]).data
    assert srm.metrics["top1_mean"] == pytest.approx(61.0) and srm.metrics["n_trials"] == 2
    assert srm.metrics["top1_std"] == pytest.approx(2 ** 0.5)  # sample std of 60 and 62
    assert srm.tags[tracking.PARENT_TAG] == parent
    board = client.search_runs([client.get_run(parent).info.experiment_id],
                               filter_string=f"tags.`{tracking.KIND_TAG}` = 'variant_summary'",
                               order_by=["metrics.top1_mean DESC"])
    assert [r.data.tags["variant"] for r in board] == ["srm", "baseline"]
    assert tracking.log_variant_summaries(parent, pairs[:3]) == run_ids  # updated, not duplicated
    assert client.get_run(run_ids["srm"]).data.metrics["top1_mean"] == pytest.approx(60.0)
