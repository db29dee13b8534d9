"""The MLflow tracking server is killed (-9) mid-job and restarted on the same port: the job succeeds,
SQL has every number, and MLflow gets the runs it missed once it is back; no run stays RUNNING."""
from __future__ import annotations

import time

from mlflow.tracking import MlflowClient
from sqlalchemy import select, update

from service import db, jobs, planning
from service.dispatcher import Dispatcher
from service.models import Job, Trial, VariantSummary
from service.schemas import JobSpec
from tests.e2e.conftest import Server
from tests.faults.conftest import start_tiny_job


def test_mlflow_server_goes_away_mid_job(mlflow_server, tmp_path, ray_address, postgres_url):
    home = tmp_path / "home"
    home.mkdir()
    server = Server(home, postgres_url, ray_address)
    # the service's own MLflow client settings: a few seconds of retries, not MLflow's default minutes
    server.env["MLFLOW_TRACKING_URI"] = mlflow_server.url
    for variable in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                     "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        server.env.pop(variable, None)
    server.start()
    try:
        job_id = start_tiny_job(server)
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


def test_a_job_that_ended_while_mlflow_was_away_is_repaired_by_a_restarted_dispatcher(mlflow_server, tmp_path,
                                                                                     srm_home, monkeypatch):
    """The repair waits in SQL (jobs.mlflow_pending), not in one dispatcher's memory."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    db.upgrade(url)
    sessions = db.session_factory(url)
    spec = JobSpec(dataset="textures[n_per_class=8,image_size=16]", backbone="cifar_resnet20",
                   variants=["baseline", "srm"], folds=2, overrides={"iterations": 2, "image_size": 16})
    with sessions() as session:
        job, _ = jobs.create_job(session, planning.plan(spec))
        job_id = job.id
        for i, trial in enumerate(job.trials):  # ended, with their numbers in SQL
            trial.status, trial.top1 = "succeeded", 60.0 + i
            trial.metrics = {"top1": 60.0 + i, "top5": 90.0, "num_train": 8, "num_eval": 8, "device": "cpu",
                             "dataset_fingerprint": "f" * 16, "split_hash": f"s{trial.fold}", "split": "cv",
                             "protocol_hash": job.protocol_hash, "content_hash": trial.content_hash}
        session.execute(update(Job).where(Job.id == job_id).values(status="running"))
        session.commit()
    first = Dispatcher(sessions, owner="first")
    parent_run = first._start_mlflow_run(job_id, None, spec.model_dump())
    assert parent_run is not None

    mlflow_server.kill()
    with sessions() as session:
        first._finish(session, session.get(Job, job_id), cancelled=False, parent_run=parent_run)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job.status == "succeeded" and job.mlflow_pending  # the numbers are in; MLflow waits
        assert {t.top1 for t in job.trials} == {60.0, 61.0, 62.0, 63.0}

    mlflow_server.start()
    Dispatcher(sessions, owner="restarted")._sync_pending_mlflow()  # a new process: nothing in memory
    with sessions() as session:
        assert not session.get(Job, job_id).mlflow_pending
        summary_runs = {s.variant: s.mlflow_run_id for s in session.scalars(
            select(VariantSummary).where(VariantSummary.job_id == job_id))}
        trial_runs = {t.id: t.mlflow_run_id for t in session.scalars(select(Trial).where(Trial.job_id == job_id))}
    mlflow = MlflowClient(mlflow_server.url)
    assert mlflow.get_run(parent_run).info.status == "FINISHED"
    assert sorted(summary_runs) == ["baseline", "srm"] and all(summary_runs.values())
    for run_id in [*summary_runs.values(), *trial_runs.values()]:  # every trial got its run, made now
        assert mlflow.get_run(run_id).info.status == "FINISHED"
    top1 = sorted(mlflow.get_run(run_id).data.metrics["top1"] for run_id in trial_runs.values())
    assert top1 == [60.0, 61.0, 62.0, 63.0]
