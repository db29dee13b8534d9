"""The real service end to end: uvicorn + dispatcher in a subprocess, local Ray, MLflow store, SQL."""
from __future__ import annotations

import subprocess

import httpx
import pytest
from mlflow.tracking import MlflowClient

from service.db import session_factory
from tests.e2e.conftest import SRM_BENCH

pytestmark = pytest.mark.slow

TINY = "textures[n_per_class=8,image_size=16]"


def tiny_job(**change) -> dict:
    """2 variants x 2 folds, two SGD steps on 16x16 images: a few seconds per trial on one core."""
    return {"dataset": TINY, "backbone": "cifar_resnet20", "variants": ["baseline", "srm"], "folds": 2,
            "protocol": "quick", "overrides": {"iterations": 2, "image_size": 16}} | change


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: studies, analyses, browser
def test_submit_run_results_reuse_and_mlflow(server):
    anonymous = httpx.post(f"{server.url}/v1/jobs", json=tiny_job())
    assert anonymous.status_code == 401  # writes need the token
    assert server.http.post("/v1/jobs", json=tiny_job(folds=1)).status_code == 422

    first = server.http.post("/v1/jobs", json=tiny_job(), headers={"Idempotency-Key": "k1"})
    retry = server.http.post("/v1/jobs", json=tiny_job(), headers={"Idempotency-Key": "k1"})
    assert first.status_code == retry.status_code == 201 and retry.json()["id"] == first.json()["id"]
    job_id = first.json()["id"]

    detail = server.wait_finished(job_id)
    assert detail["status"] == "succeeded", server.log_tail()
    assert detail["progress"]["counts"] == {"succeeded": 4}
    assert all(t["attempts"] == 1 and not t["reused"] and t["mlflow_run_id"] for t in detail["trials"])
    assert all(t["progress"] == 1.0 and t["epoch"] >= 1 and t["val_top1"] is not None for t in detail["trials"])
    assert detail["progress"]["fraction"] == 1.0

    results = server.http.get(f"/v1/jobs/{job_id}/results").json()
    rows = {r["variant"]: r for r in results["rows"]}
    assert set(rows) == {"baseline", "srm"} and rows["srm"]["n_folds"] == 2
    assert rows["srm"]["params"] > rows["baseline"]["params"] > 0
    assert rows["srm"]["gain"]["n_pairs"] == 2 and rows["srm"]["gain"]["min_wilcoxon_pvalue"] == 0.5
    assert "| srm |" in server.http.get(f"/v1/jobs/{job_id}/results", params={"format": "markdown"}).text

    mlflow = MlflowClient(server.tracking_uri)
    experiment = mlflow.get_experiment_by_name("srm-bench")
    runs = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.job_id = '{job_id}'")
    kinds = sorted(r.data.tags.get("srm_bench.kind") for r in runs)
    assert kinds == ["job", "trial", "trial", "trial", "trial", "variant_summary", "variant_summary"]
    trial_runs = {r.info.run_id for r in runs if r.data.tags.get("srm_bench.kind") == "trial"}
    assert trial_runs == {t["mlflow_run_id"] for t in detail["trials"]}
    (job_run,) = [r for r in runs if r.data.tags.get("srm_bench.kind") == "job"]
    assert job_run.info.run_name == f"{TINY} · cifar_resnet20 · quick · {job_id[:8]}"
    assert {r.info.status for r in runs} == {"FINISHED"}

    # The report was made as the job ended: stored under the home and logged with the job's run.
    report = server.http.get(f"/v1/jobs/{job_id}/report")
    assert report.status_code == 200 and report.text.count('src="data:image/png;base64,') == 3
    assert (server.home / "reports" / f"{job_id}.html").read_text(encoding="utf-8") == report.text
    assert "report.html" in {a.path for a in mlflow.list_artifacts(job_run.info.run_id)}

    # The same work again (another seed list order, same trials): nothing runs, every trial is reused.
    again = server.http.post("/v1/jobs", json=tiny_job(name="again")).json()
    repeat = server.wait_finished(again["id"], timeout=60)
    assert repeat["status"] == "succeeded"
    assert all(t["reused"] and t["attempts"] == 0 and t["progress"] == 1.0 for t in repeat["trials"])
    assert {(t["variant"], t["fold"], t["top1"]) for t in repeat["trials"]} == {
        (t["variant"], t["fold"], t["top1"]) for t in detail["trials"]}

    board = server.http.get("/v1/leaderboard", params={"dataset": TINY}).json()
    assert len(board) == 1 and board[0]["n_jobs"] == 2
    assert {r["variant"]: r["n_trials"] for r in board[0]["rows"]} == {"baseline": 4, "srm": 4}

    health = server.http.get("/healthz").json()
    assert health["ok"], health

    env = {**server.env, "COLUMNS": "200"}
    table = subprocess.run([SRM_BENCH, "results", job_id, "--url", server.url], env=env, capture_output=True,
                           text=True, timeout=60)
    assert table.returncode == 0 and "srm" in table.stdout and "Wilcoxon p" in table.stdout, table.stderr
    status = subprocess.run([SRM_BENCH, "status", job_id, "--url", server.url], env=env, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0 and "succeeded" in status.stdout and "100%" in status.stdout, status.stdout
    rejected = subprocess.run([SRM_BENCH, "submit", "--dataset", TINY, "--backbone", "cifar_resnet20",
                               "--folds", "1", "--url", server.url], env=env, capture_output=True, text=True,
                              timeout=60)
    assert rejected.returncode == 1 and "folds" in rejected.stderr and "Traceback" not in rejected.stderr


@pytest.mark.faults
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the deployment's database
def test_kill_the_server_mid_job_and_restart(server):
    """SQL is the truth: after a crash every trial still ends exactly once."""
    spec = tiny_job(seeds=[7], overrides={"iterations": 4, "image_size": 16})
    job_id = server.http.post("/v1/jobs", json=spec).json()["id"]
    before = server.wait_for(job_id, lambda d: 1 <= d["progress"]["counts"].get("succeeded", 0) < 4, poll=0.2)
    server.kill()
    with session_factory(server.env["SRM_BENCH_DATABASE_URL"])() as session:
        from service.jobs import get_job

        at_crash = {(t.variant, t.fold): (t.status, t.top1, t.finished_at, t.attempts)
                    for t in get_job(session, job_id, with_trials=True).trials}
        job = get_job(session, job_id)
        mlflow = MlflowClient(server.tracking_uri)
        experiment = job.mlflow_experiment_id
    finished_at_crash = {k for k, v in at_crash.items() if v[0] == "succeeded"}
    assert finished_at_crash and len(finished_at_crash) < 4, before["progress"]
    running_at_crash = {r.info.run_id for r in mlflow.search_runs(
        [experiment], filter_string=f"tags.job_id = '{job_id}' and tags.`srm_bench.kind` = 'trial' "
                                    "and attributes.status = 'RUNNING'")}

    server.start()
    after = server.wait_finished(job_id, timeout=300)
    assert after["status"] == "succeeded", server.log_tail()
    trials = {(t["variant"], t["fold"]): t for t in after["trials"]}
    assert len(after["trials"]) == len(trials) == 4  # none lost, none duplicated
    for key, trial in trials.items():
        assert trial["status"] == "succeeded" and trial["progress"] == 1.0
        assert trial["mlflow_run_id"], f"{key} has no MLflow run id after the restart"
        if key in finished_at_crash:  # finished before the crash: kept, not run again
            assert trial["attempts"] == 1 and trial["top1"] == at_crash[key][1]
        else:  # running or queued at the crash: run once more, to completion
            assert trial["attempts"] == at_crash[key][3] + 1
    results = server.http.get(f"/v1/jobs/{job_id}/results").json()
    assert [r["n_folds"] for r in results["rows"]] == [2, 2]

    # MLflow: the dead dispatcher's trial runs were closed as KILLED; no run of the job is left RUNNING.
    runs = mlflow.search_runs([experiment], filter_string=f"tags.job_id = '{job_id}'")
    still_running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    print(f"MLflow runs of the job after the restart: {len(runs)}, RUNNING: {len(still_running)}, "
          f"closed as KILLED: {len(running_at_crash)}")
    assert still_running == []
    assert {r.info.run_id: r.info.status for r in runs if r.info.run_id in running_at_crash} == {
        run_id: "KILLED" for run_id in running_at_crash}
    assert not running_at_crash & {t["mlflow_run_id"] for t in after["trials"]}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cancel_a_running_job_keeps_finished_trials(server):
    spec = tiny_job(seeds=[3], overrides={"iterations": 400, "image_size": 16})
    job_id = server.http.post("/v1/jobs", json=spec).json()["id"]
    server.wait_for(job_id, lambda d: d["status"] == "running")
    cancelled = server.http.delete(f"/v1/jobs/{job_id}").json()
    assert cancelled["cancel_requested"]
    detail = server.wait_finished(job_id, timeout=120)
    assert detail["status"] == "cancelled"
    assert {t["status"] for t in detail["trials"]} <= {"cancelled", "succeeded"}
    assert any(t["status"] == "cancelled" for t in detail["trials"])
