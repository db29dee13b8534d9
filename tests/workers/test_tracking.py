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


def result_model_parameters(spec):
    """The trial's model's parameter tensors, built independently of the trial."""
    from srm_models import create_model

    return create_model(spec.model_name(), num_classes=8, input_size=16).parameters()


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
    assert params["protocol.no_weight_decay"] == "none"
    assert {k: v for k, v in params.items() if k.startswith("param_groups.")} == {
        "param_groups.decay.weight_decay": "0.0005", "param_groups.decay.tensors": str(len(list(
            result_model_parameters(spec)))), "param_groups.decay.params": str(result["params"])}
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


def test_run_names_say_what_each_run_is():
    from workers.run_names import job_run_name, summary_run_name, trial_run_name

    spec = dataclasses.replace(tiny_spec("srm", fold=2), seed=0)
    assert trial_run_name(spec) == "srm · fold 2 · repeat 0 · seed 0"
    named = job_run_name("0123456789abcdef", None, {"dataset": "textures", "backbone": "cifar_resnet20",
                                                    "protocol": "quick"})
    assert named == "textures · cifar_resnet20 · quick · 01234567"
    assert job_run_name("0123456789abcdef", "my study", {}) == "my study"
    assert summary_run_name("se", "textures", "cifar_resnet20") == "se · textures · cifar_resnet20"


def test_both_experiments_open_on_the_runs_table(mlflow_home):
    client = MlflowClient(tracking.tracking_uri())
    for name in (tracking.EXPERIMENT_NAME, tracking.LEADERBOARD_EXPERIMENT):
        experiment = client.get_experiment(tracking.experiment_id(client, name))
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_trial_run_logs_its_dataset_as_an_input(mlflow_home, finished_trial):
    spec, result = finished_trial
    run_id = tracking.log_trial(tracking.start_job_run("job-4", None, {"dataset": spec.dataset}), spec, result)
    run = MlflowClient(tracking.tracking_uri()).get_run(run_id)
    assert run.info.run_name == f"srm · fold 2 · repeat 0 · seed {spec.seed}"
    (entry,) = run.inputs.dataset_inputs
    assert entry.dataset.name == spec.dataset and entry.dataset.digest == result["dataset_fingerprint"][:32]
    tags = {t.key: t.value for t in entry.tags}
    assert tags["split_hash"] == result["split_hash"] and tags["mlflow.data.context"] == "cross-validation"


def test_summaries_carry_the_comparison_and_fill_the_leaderboard_experiment(mlflow_home, finished_trial):
    spec, result = finished_trial
    parent = tracking.start_job_run("job-5", None, {"dataset": spec.dataset})
    pairs = [(dataclasses.replace(spec, variant={"kind": kind}, fold=fold), {**result, "top1": top1})
             for kind, fold, top1 in [("baseline", 0, 50.0), ("baseline", 1, 54.0), ("se", 0, 55.0), ("se", 1, 57.0)]]
    comparisons = {"se": {"n_folds": 2, "gain_top1": 4.0}, "baseline": {"n_folds": 2}}
    run_ids = tracking.log_variant_summaries(parent, pairs, comparisons)
    client = MlflowClient(tracking.tracking_uri())
    se = client.get_run(run_ids["se"])
    assert se.info.run_name == f"se · {spec.dataset} · cifar_resnet20"
    assert se.data.metrics["gain_top1"] == 4.0 and se.data.metrics["n_folds"] == 2
    assert "corrected_t_pvalue" not in se.data.metrics and "p_better" not in se.data.metrics  # not computed here
    assert se.data.params == {"dataset": spec.dataset, "backbone": "cifar_resnet20", "protocol": spec.protocol,
                              "variant": "se", "job_id": "job-5"}
    board_id = client.get_experiment_by_name(tracking.LEADERBOARD_EXPERIMENT).experiment_id
    board = client.search_runs([board_id], filter_string="tags.job_id = 'job-5'", order_by=["metrics.top1_mean DESC"])
    assert [(r.info.run_name, r.data.metrics["top1_mean"]) for r in board] == [
        (f"se · {spec.dataset} · cifar_resnet20", 56.0), (f"baseline · {spec.dataset} · cifar_resnet20", 52.0)]
    assert all(tracking.PARENT_TAG not in r.data.tags and r.info.status == "FINISHED" for r in board)
    assert board[0].inputs.dataset_inputs[0].dataset.digest == result["dataset_fingerprint"][:32]
    tracking.log_variant_summaries(parent, pairs, comparisons)  # again: updated, not duplicated
    assert len(client.search_runs([board_id], filter_string="tags.job_id = 'job-5'")) == 2


def test_runs_left_running_are_closed_and_the_job_run_kept(mlflow_home, finished_trial):
    spec, _ = finished_trial
    spec = dataclasses.replace(spec, job_id="job-6")
    parent = tracking.start_job_run("job-6", None, {})
    left = [tracking.start_trial_run(parent, dataclasses.replace(spec, fold=fold)) for fold in (0, 1)]
    assert sorted(tracking.close_running_runs(parent, "job-6", "KILLED", keep=[parent])) == sorted(left)
    client = MlflowClient(tracking.tracking_uri())
    assert [client.get_run(r).info.status for r in left] == ["KILLED", "KILLED"]
    assert client.get_run(parent).info.status == "RUNNING"
    assert tracking.close_running_runs(parent, "job-6", "KILLED") == [parent]
