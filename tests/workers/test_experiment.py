"""Jobs on a real local Ray, logged to a real local MLflow store."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.workers import layouts
from tests.workers.specs import tiny_spec
from workers import tracking
from workers.experiment import _check_same_specs, _trial_resources, run_experiment

pytestmark = pytest.mark.usefixtures("ray_address")
VARIANTS = ("baseline", "se", "ge", "srm")


def test_four_variants_by_five_folds_with_mlflow_runs_under_the_parent(tmp_path, mlflow_home):
    specs = [tiny_spec(kind, fold=fold, epochs=1) for kind in VARIANTS for fold in range(5)]
    parent = tracking.start_job_run("job-1", "4x5", {"variants": list(VARIANTS)})
    completed, progress = [], []
    outcomes = run_experiment("job-4x5", specs, data_dir=tmp_path, storage_dir=tmp_path / "ray",
                              mlflow_parent_run_id=parent,
                              on_trial_complete=lambda spec, result, error: completed.append((spec, result, error)),
                              on_trial_progress=lambda spec, update: progress.append((spec, update)))
    assert [o.status for o in outcomes] == ["succeeded"] * 20, [o.error for o in outcomes]
    assert [o.spec for o in outcomes] == specs
    assert sorted((s.variant_label(), s.fold) for s, _, _ in completed) == sorted(
        (s.variant_label(), s.fold) for s in specs)
    assert all(error is None for _, _, error in completed)
    run_ids = {(o.spec.variant_label(), o.spec.fold): o.mlflow_run_id for o in outcomes}
    assert all(result["mlflow_run_id"] == run_ids[(s.variant_label(), s.fold)] for s, result, _ in completed)
    # the final weights are the checkpoint logged to the trial's MLflow run
    assert all(result["weights_uri"] == f"runs:/{result['mlflow_run_id']}/checkpoint/last.pt"
               for _, result, _ in completed)
    # per trial, in the driver: its start (epoch 0), then its one epoch with that epoch's metrics
    for spec in specs:
        updates = [u for s, u in progress if s == spec]
        assert [(u["epoch"], u["epochs"]) for u in updates] == [(0, 1), (1, 1)]
        assert updates[0]["metrics"] == {} and 0 <= updates[1]["metrics"]["val_top1"] <= 100
        assert {u["mlflow_run_id"] for u in updates} == {run_ids[(spec.variant_label(), spec.fold)]}
    client = MlflowClient(tracking.tracking_uri())
    for outcome in outcomes:
        run = client.get_run(outcome.mlflow_run_id)
        assert run.data.tags[tracking.PARENT_TAG] == parent and run.info.status == "FINISHED"
        assert (run.data.tags["variant"], run.data.tags["fold"]) == (outcome.spec.variant_label(),
                                                                     str(outcome.spec.fold))
        assert run.data.metrics["top1"] == pytest.approx(outcome.result["top1"])
    summaries = tracking.log_variant_summaries(parent, outcomes)
    assert set(summaries) == set(VARIANTS)
    assert all(client.get_run(r).data.metrics["n_trials"] == 5 for r in summaries.values())
    assert len({o.result["split_hash"] for o in outcomes}) == 5  # 5 folds, shared by the 4 variants


def test_a_killed_trial_resumes_from_its_checkpoint(tmp_path, srm_home):
    """Two identical trials; the first to finish epoch 1 kills its own worker process once.
    Without MLflow, the final weights are kept under the home, named by the content hash."""
    spec = tiny_spec("srm", epochs=3)
    marker = tmp_path / "crashed-once"
    starts = []
    outcomes = run_experiment("job-crash", [spec, spec], data_dir=tmp_path, storage_dir=tmp_path / "ray",
                              max_failures=1, fault_injection={"crash_after_epoch": 1, "marker": str(marker)},
                              on_trial_progress=lambda s, update: (
                                  starts.append(update) if not update["metrics"] else None))
    assert marker.is_file()
    # the retry is announced as going on from its checkpoint's epoch, not from 0
    assert sorted((u["attempt"], u["epoch"]) for u in starts) == [(1, 0), (1, 0), (2, 1)]
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"], [o.error for o in outcomes]
    crashed = [o for o in outcomes if o.attempts == 2]
    assert len(crashed) == 1 and crashed[0].result["resumed_from_epoch"] == 1
    clean = next(o for o in outcomes if o.attempts == 1)
    assert clean.result["resumed_from_epoch"] == 0
    assert crashed[0].result["top1"] == clean.result["top1"]
    assert crashed[0].result["loss"] == pytest.approx(clean.result["loss"], rel=1e-6)
    kept = srm_home / "models" / f"{clean.result['content_hash']}.pt"
    assert clean.result["weights_uri"] == kept.as_uri() and kept.is_file()


def test_a_corrupt_image_fails_its_trial_while_the_others_finish(tmp_path):
    data_dir = tmp_path / "data"
    files = layouts.write_class_tree(data_dir / "broken", ["a", "b"], 5)
    files[3].write_bytes(b"not an image")
    specs = [tiny_spec("baseline", epochs=1), tiny_spec(dataset="imagefolder:broken", n_folds=2, epochs=1),
             tiny_spec("se", epochs=1)]
    completed = {}
    outcomes = run_experiment("job-corrupt", specs, data_dir=data_dir, storage_dir=tmp_path / "ray",
                              on_trial_complete=lambda spec, result, error: completed.update(
                                  {spec.dataset + spec.variant_label(): error}))
    assert [o.status for o in outcomes] == ["succeeded", "failed", "succeeded"]
    assert "DatasetError" in outcomes[1].error and files[3].name in outcomes[1].error
    assert outcomes[1].attempts == 1  # bad data is not retried
    assert completed["imagefolder:brokenbaseline"] == outcomes[1].error


def test_should_stop_cancels_running_trials(tmp_path):
    specs = [tiny_spec("baseline", epochs=200), tiny_spec("srm", epochs=200)]
    started = time.monotonic()
    completed = []
    outcomes = run_experiment("job-cancel", specs, data_dir=tmp_path, storage_dir=tmp_path / "ray",
                              should_stop=lambda: time.monotonic() - started > 8,
                              on_trial_complete=lambda spec, result, error: completed.append((result, error)))
    assert [o.status for o in outcomes] == ["cancelled", "cancelled"]
    assert all(o.result is None for o in outcomes)
    assert len(completed) == 2 and all(r is None and "cancel" in e for r, e in completed)


DRIVER = """
import json, sys
from tests.workers.specs import tiny_spec
from workers.experiment import _check_same_specs, _trial_resources, run_experiment
specs = [tiny_spec("baseline", fold=f, epochs={epochs}) for f in range(2)]
def done(spec, result, error):
    with open({log!r}, "a") as f:
        f.write(json.dumps({{"fold": spec.fold, "error": error}}) + "\\n")
run_experiment("job-resume", specs, data_dir={data!r}, storage_dir={storage!r}, resources={{"cpu": 2}},
               on_trial_complete=done)
"""


def test_an_experiment_resumes_after_its_driver_dies(tmp_path):
    log = tmp_path / "completed.jsonl"
    script = DRIVER.format(epochs=3, log=str(log), data=str(tmp_path), storage=str(tmp_path / "ray"))
    driver = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not (log.is_file() and log.read_text().strip()) and time.monotonic() < deadline:
        assert driver.poll() is None, "the driver ended before a trial completed"
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    first = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(first) >= 1
    later = {}
    specs = [tiny_spec("baseline", fold=f, epochs=3) for f in range(2)]
    outcomes = run_experiment("job-resume", specs, data_dir=tmp_path, storage_dir=tmp_path / "ray",
                              resources={"cpu": 2}, on_trial_complete=lambda s, r, e: later.update({s.fold: r}))
    assert [o.status for o in outcomes] == ["succeeded"] * 2, [o.error for o in outcomes]
    assert set(later) | {entry["fold"] for entry in first} == {0, 1}
    # A trial that finished just before the driver died may be announced again (the driver can
    # die between the announcement and Tune's state snapshot), but it is not trained again:
    # it resumes from its last checkpoint.
    for entry in first:
        if entry["fold"] in later:
            assert later[entry["fold"]]["resumed_from_epoch"] > 0


def test_resuming_with_other_specs_is_refused(tmp_path):
    _check_same_specs(tmp_path / "job", [tiny_spec("srm")])
    _check_same_specs(tmp_path / "job", [tiny_spec("srm")])  # same specs: fine
    with pytest.raises(ValueError, match="with other trial specs"):
        _check_same_specs(tmp_path / "job", [tiny_spec("se")])


def test_trial_resources_are_validated_and_gpus_dropped_without_gpus():
    import ray

    has_gpu = bool(ray.cluster_resources().get("GPU"))
    assert _trial_resources({"cpu": 1, "gpu": 0.25}) == {"cpu": 1.0, "gpu": 0.25 if has_gpu else 0.0}
    with pytest.raises(ValueError, match="valid: cpu, gpu"):
        _trial_resources({"cpus": 1})
    with pytest.raises(ValueError, match="cpu > 0"):
        _trial_resources({"cpu": 0})
