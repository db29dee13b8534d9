"""A user's module through the whole service: loaded by `srm-bench serve` from SRM_BENCH_PLUGINS,
submitted over REST, trained on Ray workers, and shown in the results and in MLflow."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from service.db import session_factory
from service.jobs import get_job
from tests.e2e.conftest import Server

pytestmark = pytest.mark.slow

PLUGIN = "tests.plugins.scalegate"
PLUGIN_FILE = Path(__file__).resolve().parent.parent / "plugins" / "scalegate.py"
TINY = "textures[n_per_class=8,image_size=16]"


@pytest.fixture()
def plugin_server(tmp_path, ray_address):
    """`srm-bench serve` on SQLite with the test plugin named in its environment."""
    home = tmp_path / "home"
    home.mkdir()
    serving = Server(home, f"sqlite:///{tmp_path / 'plugin.db'}", ray_address)
    serving.env["SRM_BENCH_PLUGINS"] = PLUGIN
    serving.start()
    yield serving
    serving.kill()


def test_a_plugin_kind_runs_through_rest_on_ray_into_results_and_mlflow(plugin_server):
    server = plugin_server
    kinds = {k["name"]: k for k in server.http.get("/v1/models").json()["kinds"]}
    source_sha256 = hashlib.sha256(PLUGIN_FILE.read_bytes()).hexdigest()
    assert kinds["scalegate"]["plugin"] == {"module": PLUGIN, "version": "0.3.1", "source_sha256": source_sha256}
    assert kinds["scalegate"]["options"] == {"init": 0.0}

    bad = server.http.post("/v1/jobs", json={"dataset": TINY, "backbone": "cifar_resnet20",
                                             "variants": [{"kind": "scalegate", "colour": 1}], "folds": 2})
    assert bad.status_code == 422 and "does not take 'colour'" in bad.text and "init" in bad.text

    job = {"dataset": TINY, "backbone": "cifar_resnet20", "variants": ["baseline", "scalegate"], "folds": 2,
           "protocol": "quick", "overrides": {"iterations": 2, "image_size": 16}}
    created = server.http.post("/v1/jobs", json=job)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    detail = server.wait_finished(job_id)
    assert detail["status"] == "succeeded", server.log_tail()
    assert {(t["variant"], t["status"]) for t in detail["trials"]} == {("baseline", "succeeded"),
                                                                       ("scalegate", "succeeded")}

    results = server.http.get(f"/v1/jobs/{job_id}/results").json()
    rows = {r["variant"]: r for r in results["rows"]}
    assert rows["scalegate"]["n_folds"] == 2 and rows["scalegate"]["gain"]["n_pairs"] == 2
    # one gate weight per channel of every block's output: 9 blocks each at 64, 128 and 256 channels
    assert rows["scalegate"]["params"] - rows["baseline"]["params"] == 3 * (64 + 128 + 256)

    with session_factory(server.env["SRM_BENCH_DATABASE_URL"])() as session:
        trials = [t for t in get_job(session, job_id, with_trials=True).trials if t.variant == "scalegate"]
        assert all(t.spec["plugin"] == {"module": PLUGIN, "version": "0.3.1", "source_sha256": source_sha256}
                   for t in trials)

    mlflow = MlflowClient(server.tracking_uri)
    experiment = mlflow.get_experiment_by_name("srm-bench")
    runs = mlflow.search_runs([experiment.experiment_id],
                              filter_string=f"tags.job_id = '{job_id}' and tags.variant = 'scalegate'")
    by_kind = {}
    for run in runs:
        by_kind.setdefault(run.data.tags["srm_bench.kind"], []).append(run)
    assert len(by_kind["trial"]) == 2 and len(by_kind["variant_summary"]) == 1
    trial_run = by_kind["trial"][0]
    assert trial_run.data.tags["model"] == "scalegate_cifar_resnet20"
    assert trial_run.data.params["spec.plugin.module"] == PLUGIN
    assert trial_run.data.params["spec.plugin.source_sha256"] == source_sha256
    assert trial_run.data.metrics["top1"] == pytest.approx(
        next(t["top1"] for t in detail["trials"] if t["mlflow_run_id"] == trial_run.info.run_id))
    assert by_kind["variant_summary"][0].data.metrics["n_trials"] == 2.0
    print("plugin job results:", {v: (r["top1_mean"], r["top1_std"], r["params"]) for v, r in rows.items()})
