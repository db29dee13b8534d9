"""Trial progress and MLflow run ids: from Tune's events through the dispatcher into SQL and the API."""
from __future__ import annotations

import pytest
from mlflow import MlflowClient
from sqlalchemy import select

from service import jobs, planning
from service.dispatcher import Dispatcher
from service.models import Job, Trial
from service.schemas import JobSpec
from tests.service.conftest import TINY_DATASET
from tests.service.factories import queued_job
from workers import tracking


def _trial(sessions, trial_id: int) -> Trial:
    with sessions() as session:
        return session.get(Trial, trial_id)


def test_a_trial_runs_only_once_started_and_its_epochs_move_its_progress(sessions):
    with sessions() as session:
        trial_id = queued_job(session, n_trials=1).trials[0].id
    dispatcher = Dispatcher(sessions, owner="x")

    dispatcher._progress(trial_id, {"epoch": 0, "epochs": 4, "metrics": {}, "mlflow_run_id": "run-a"})
    started = _trial(sessions, trial_id)
    assert (started.status, started.progress, started.epoch, started.mlflow_run_id) == ("running", 0.0, 0, "run-a")
    assert started.started_at is not None and started.val_top1 is None

    dispatcher._progress(trial_id, {"epoch": 1, "epochs": 4, "metrics": {"val_top1": 37.5}, "mlflow_run_id": "run-a"})
    after_one = _trial(sessions, trial_id)
    assert (after_one.progress, after_one.epoch, after_one.val_top1) == (0.25, 1, 37.5)
    assert after_one.started_at == started.started_at  # a later epoch does not restart the clock

    dispatcher._record(trial_id, "succeeded", {"top1": 50.0, "epochs": 4, "mlflow_run_id": "run-a"}, None)
    dispatcher._progress(trial_id, {"epoch": 3, "epochs": 4, "metrics": {"val_top1": 1.0}})  # late: ignored
    done = _trial(sessions, trial_id)
    assert (done.status, done.progress, done.epoch, done.val_top1, done.mlflow_run_id) == (
        "succeeded", 1.0, 4, 37.5, "run-a")


def test_a_failed_trial_keeps_its_run_id_and_where_it_stopped(sessions):
    with sessions() as session:
        trial_id = queued_job(session, n_trials=1).trials[0].id
    dispatcher = Dispatcher(sessions, owner="x")
    dispatcher._progress(trial_id, {"epoch": 0, "epochs": None, "metrics": {}, "mlflow_run_id": "run-b"})
    dispatcher._progress(trial_id, {"epoch": 2, "epochs": None, "metrics": {"val_top1": float("nan")}})
    running = _trial(sessions, trial_id)
    assert (running.progress, running.epoch, running.val_top1) == (None, 2, None)  # epoch count unknown; NaN dropped
    dispatcher._record(trial_id, "failed", None, "FloatingPointError: loss became nan")
    failed = _trial(sessions, trial_id)
    assert (failed.status, failed.epoch, failed.mlflow_run_id) == ("failed", 2, "run-b")
    assert failed.error.startswith("FloatingPointError")


def test_job_detail_shows_each_trials_progress_and_a_partial_fraction(client, db_url):
    from service.db import session_factory

    sessions = session_factory(db_url)
    with sessions() as session:
        job = queued_job(session, n_trials=4)
        ids = [t.id for t in job.trials]
    dispatcher = Dispatcher(sessions, owner="x")
    dispatcher._record(ids[0], "succeeded", {"top1": 60.0, "epochs": 2, "mlflow_run_id": "r0"}, None)
    dispatcher._progress(ids[1], {"epoch": 1, "epochs": 2, "metrics": {"val_top1": 55.0}, "mlflow_run_id": "r1"})
    detail = client.get(f"/v1/jobs/{job.id}").json()
    trials = {t["id"]: t for t in detail["trials"]}
    assert [(trials[i]["status"], trials[i]["progress"], trials[i]["epoch"], trials[i]["val_top1"]) for i in ids] == [
        ("succeeded", 1.0, 2, None), ("running", 0.5, 1, 55.0), ("queued", None, None, None),
        ("queued", None, None, None)]
    assert trials[ids[1]]["mlflow_run_id"] == "r1"
    assert detail["progress"]["counts"] == {"succeeded": 1, "running": 1, "queued": 2}
    assert detail["progress"]["fraction"] == pytest.approx((1 + 0.5) / 4)


class SnapshottingDispatcher(Dispatcher):
    """The real dispatcher, which also reads every trial's row back from SQL after each progress write."""

    snapshots: list[dict[int, tuple]]

    def _progress(self, trial_id, progress):
        super()._progress(trial_id, progress)
        with self.sessions() as session:
            rows = session.scalars(select(Trial).where(Trial.job_id == self.job_id))
            self.snapshots.append({t.id: (t.status, t.progress, t.epoch, t.mlflow_run_id) for t in rows})


@pytest.mark.usefixtures("ray_address")
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_job_on_ray_reports_progress_and_mlflow_run_ids_into_sql(sessions, srm_home):
    """Two trials that each take both CPUs of the test Ray: the second waits, queued, while the first runs."""
    spec = JobSpec(dataset=TINY_DATASET, backbone="cifar_resnet20", variants=[{"kind": "baseline"}],
                   folds=2, overrides={"epochs": 2, "batch_size": 16, "image_size": 16},
                   resources={"cpus": 2})
    with sessions() as session:
        job, _ = jobs.create_job(session, planning.plan(spec))
        job_id = job.id
    dispatcher = SnapshottingDispatcher(sessions, owner="progress-test")
    dispatcher.job_id, dispatcher.snapshots = job_id, []
    assert dispatcher.claim() == job_id
    dispatcher.run_job(job_id)

    with sessions() as session:
        job = session.get(Job, job_id)
        trials = list(job.trials)
        assert job.status == "succeeded", [t.error for t in trials]
    assert all(t.progress == 1.0 and t.epoch == 2 and t.val_top1 is not None for t in trials)
    first, second = sorted(trials, key=lambda t: t.started_at)
    # each trial: one write at its start and one per epoch (2 epochs)
    assert len(dispatcher.snapshots) == 3 * len(trials)
    at_first_start = dispatcher.snapshots[0]
    assert at_first_start[first.id][:3] == ("running", 0.0, 0) and at_first_start[second.id][0] == "queued"
    assert any(s[first.id][:3] == ("running", 0.5, 1) for s in dispatcher.snapshots)
    runs = MlflowClient(tracking.tracking_uri()).search_runs([job.mlflow_experiment_id],
                                                             filter_string=f"tags.job_id = '{job_id}'")
    trial_runs = {r.info.run_id for r in runs if r.data.tags.get("srm_bench.kind") == "trial"}
    assert trial_runs == {t.mlflow_run_id for t in trials} and len(trial_runs) == 2
    assert all(s[first.id][3] == first.mlflow_run_id for s in dispatcher.snapshots)  # known from its start on
