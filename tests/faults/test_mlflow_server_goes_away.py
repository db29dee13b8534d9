"""The MLflow tracking server is killed (-9) mid-job and restarted on the same port: the job succeeds,
SQL has every number, and MLflow gets the runs it missed once it is back; no run stays RUNNING."""
from __future__ import annotations

import time

from mlflow.tracking import MlflowClient

from tests.e2e.conftest import Server

TINY = "textures[n_per_class=24,image_size=16]"


def test_mlflow_server_goes_away_mid_job(mlflow_server, tmp_path, ray_address, postgres_url):
    home = tmp_path / "home"
    home.mkdir()
    server = Server(home, postgres_url, ray_address)
    # Fail fast while the server is away rather than MLflow's default ~2 minutes of client retries.
    server.env |= {"MLFLOW_TRACKING_URI": mlflow_server.url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    server.start()
    try:
        spec = {"dataset": TINY, "backbone": "cifar_resnet20", "variants": ["baseline", "srm"], "folds": 2,
                "protocol": "quick", "overrides": {"epochs": 3, "image_size": 16}}
        job_id = server.http.post("/v1/jobs", json=spec).json()["id"]
        server.wait_for(job_id, lambda d: d["progress"]["counts"].get("running", 0) >= 1, poll=0.2)
        mlflow_server.kill()
        # at least one trial ends while MLflow is away: its run cannot be finished then
        during = server.wait_for(job_id, lambda d: d["progress"]["counts"].get("succeeded", 0) >= 1,
                                 timeout=240, poll=0.3)
        time.sleep(2)
        mlflow_server.start()
        after = server.wait_finished(job_id, timeout=300)
        _check(server, mlflow_server, job_id, after, during)
    finally:
        server.kill()


def _check(server, mlflow_server, job_id, after, during) -> None:
    assert after["status"] == "succeeded", server.log_tail()
    assert "MLflow" in server.log_tail(200_000)  # the outage was noticed and logged
    trials = after["trials"]
    assert len(trials) == 4 and all(t["status"] == "succeeded" and t["top1"] is not None for t in trials)
    assert during["progress"]["counts"].get("succeeded", 0) >= 1

    mlflow = MlflowClient(mlflow_server.url)
    experiment = mlflow.get_experiment_by_name("srm-bench")

    def job_runs():
        return mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.job_id = '{job_id}'")

    deadline = time.monotonic() + 120  # a job that ended while MLflow was away is synced when the dispatcher idles
    while any(r.info.status != "FINISHED" for r in job_runs()) and time.monotonic() < deadline:
        time.sleep(1)
    runs = job_runs()
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == [], server.log_tail()
    trials = server.http.get(f"/v1/jobs/{job_id}").json()["trials"]
    by_id = {r.info.run_id: r for r in runs}
    for trial in trials:  # every trial has a finished run holding the number SQL has
        run = by_id[trial["mlflow_run_id"]]
        assert run.info.status == "FINISHED", (trial["variant"], trial["fold"], run.info.status, server.log_tail())
        assert run.data.metrics["top1"] == trial["top1"]
    summaries = [r for r in runs if r.data.tags.get("srm_bench.kind") == "variant_summary"]
    assert sorted(r.data.tags["variant"] for r in summaries) == ["baseline", "srm"]
    (job_run,) = [r for r in runs if r.data.tags.get("srm_bench.kind") == "job"]
    assert job_run.info.status == "FINISHED"
