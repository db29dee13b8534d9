"""Claims and trial preparation of the dispatcher, on SQL alone (the Ray part is in tests/e2e)."""
from __future__ import annotations

import threading
import time

from sqlalchemy import select

from service.dispatcher import Dispatcher
from service.models import Job, Trial
from tests.service.factories import finished_job, queued_job


def test_each_job_is_claimed_once_oldest_first(sessions):
    with sessions() as session:
        older, newer = queued_job(session, created_offset_s=-10), queued_job(session)
    first, second = Dispatcher(sessions, owner="a"), Dispatcher(sessions, owner="b")
    assert first.claim() == older.id
    assert second.claim() == newer.id
    assert first.claim() is None and second.claim() is None
    with sessions() as session:
        rows = {j.id: j for j in session.scalars(select(Job))}
    assert rows[older.id].status == "running" and rows[older.id].lease_owner == "a"
    assert rows[older.id].started_at is not None


def test_concurrent_dispatchers_never_take_the_same_job(sessions):
    with sessions() as session:
        ids = {queued_job(session, n_trials=1).id for _ in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()

    def grab(owner: str) -> None:
        dispatcher = Dispatcher(sessions, owner=owner)
        while (job_id := dispatcher.claim()) is not None:
            with lock:
                claimed.append(job_id)

    threads = [threading.Thread(target=grab, args=(f"d{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_an_expired_lease_lets_another_dispatcher_take_over(sessions):
    with sessions() as session:
        job = queued_job(session)
    assert Dispatcher(sessions, owner="dead", lease_s=0.2).claim() == job.id
    assert Dispatcher(sessions, owner="early").claim() is None  # lease still held
    time.sleep(0.5)
    assert Dispatcher(sessions, owner="heir").claim() == job.id
    with sessions() as session:
        assert session.get(Job, job.id).lease_owner == "heir"


def test_a_dispatcher_never_claims_again_a_job_it_still_runs(sessions):
    """The lease of a running job runs out while the database is away; when it is back, the
    dispatcher that runs it must not claim it a second time (that would run its trials again)."""
    with sessions() as session:
        job = queued_job(session)
    dispatcher = Dispatcher(sessions, owner="runner", lease_s=0.2)
    assert dispatcher.claim() == job.id
    dispatcher.jobs[job.id] = threading.current_thread()  # as _start_job_thread records it
    time.sleep(0.5)
    assert dispatcher.claim() is None
    del dispatcher.jobs[job.id]  # its thread ended without concluding: the job may be taken again
    assert dispatcher.claim() == job.id


def test_prepare_requeues_left_running_trials_and_reuses_identical_finished_ones(sessions):
    with sessions() as session:
        donor_job = finished_job(session, {"baseline": [0.7]})
        donor = donor_job.trials[0]
        donor.weights_uri = "runs:/donor-run/checkpoint/last.pt"
        job = queued_job(session, n_trials=3)
        job.trials[0].content_hash = donor.content_hash  # same work as a finished trial
        job.trials[1].status, job.trials[1].attempts = "running", 1  # left by a dead dispatcher
        job.trials[2].status, job.trials[2].top1 = "succeeded", 0.5  # finished before the crash
        session.commit()
        to_run = Dispatcher(sessions, owner="x")._prepare_trials(session, session.get(Job, job.id))
        assert [t.id for t in to_run] == [job.trials[1].id]
    with sessions() as session:
        trials = list(session.scalars(select(Trial).where(Trial.job_id == job.id).order_by(Trial.id)))
    reused, rerun, kept = trials
    assert reused.status == "succeeded" and reused.reused and reused.reused_from == donor.id
    assert reused.top1 == 0.7 and reused.attempts == 0
    assert reused.weights_uri == "runs:/donor-run/checkpoint/last.pt"  # analyses load the donor's weights
    assert rerun.status == "queued" and rerun.attempts == 2  # running once Tune starts it
    assert kept.status == "succeeded" and kept.top1 == 0.5 and not kept.reused


def test_record_ends_a_trial_only_once(sessions):
    with sessions() as session:
        job = queued_job(session, n_trials=1)
        trial = job.trials[0]
        trial.status = "running"
        session.commit()
    dispatcher = Dispatcher(sessions, owner="x")
    dispatcher._record(trial.id, "succeeded", {"top1": 0.8, "top5": 0.9, "device": "cpu"}, None)
    dispatcher._record(trial.id, "failed", None, "a late second report")
    with sessions() as session:
        row = session.get(Trial, trial.id)
    assert row.status == "succeeded" and row.top1 == 0.8 and row.error is None and row.metrics["device"] == "cpu"


def test_record_stores_numpy_and_nan_as_plain_json(sessions):
    import numpy as np

    with sessions() as session:
        job = queued_job(session, n_trials=1)
        trial = job.trials[0]
        trial.status = "running"
        session.commit()
    result = {"top1": float("nan"), "top5": np.float32(0.5), "loss": float("inf"), "note": "loss is NaN",
              "group_top1": {"Ar": np.float64(0.25)}}
    Dispatcher(sessions, owner="x")._record(trial.id, "succeeded", result, None)
    with sessions() as session:
        row = session.get(Trial, trial.id)
    assert row.top1 is None and row.top5 == 0.5
    assert row.metrics == {"top1": None, "top5": 0.5, "loss": None, "note": "loss is NaN", "group_top1": {"Ar": 0.25}}


def test_a_job_that_breaks_the_dispatcher_fails_with_the_reason(sessions, srm_home):
    """A trial spec the workers cannot read must fail its job, not loop or stop the dispatcher."""
    with sessions() as session:
        job = queued_job(session, n_trials=1)
        job.trials[0].spec = {"not": "a trial spec"}
        session.commit()
    dispatcher = Dispatcher(sessions, owner="x", poll_s=0.05)
    thread = threading.Thread(target=dispatcher.run_forever)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with sessions() as session:
            if session.get(Job, job.id).status == "failed":
                break
        time.sleep(0.1)
    dispatcher.stop()
    thread.join(timeout=30)
    with sessions() as session:
        row = session.get(Job, job.id)
        trial = session.scalars(select(Trial).where(Trial.job_id == job.id)).one()
    assert row.status == "failed" and "unknown TrialSpec fields" in row.error
    assert trial.status == "failed" and not thread.is_alive()


def _queued_for(session, who: str | None, offset_s: float):
    job = queued_job(session, n_trials=1, created_offset_s=offset_s)
    job.submitted_by = who
    session.commit()
    return job.id


def test_jobs_start_round_robin_by_submitter(sessions):
    """ann queued 4 jobs before bob queued 2 and carol 1: they start ann, bob, carol, ann, bob, ann, ann."""
    with sessions() as session:
        ann = [_queued_for(session, "ann", -100 + i) for i in range(4)]
        bob = [_queued_for(session, "bob", -50 + i) for i in range(2)]
        carol = [_queued_for(session, "carol", -10)]
    dispatcher = Dispatcher(sessions, owner="rr")
    order = []
    while (job_id := dispatcher.claim()) is not None:
        order.append(job_id)
        with sessions() as session:  # a claim-only loop: each job ends at once, so turns are by last start
            session.get(Job, job_id).status = "succeeded"
            session.commit()
        time.sleep(0.002)  # distinct start times on every clock
    assert order == [ann[0], bob[0], carol[0], ann[1], bob[1], ann[2], ann[3]]


def test_the_submitter_with_fewer_running_jobs_goes_first(sessions):
    with sessions() as session:
        ann = [_queued_for(session, "ann", -100 + i) for i in range(3)]
        bob = _queued_for(session, "bob", 0)
    first, second = Dispatcher(sessions, owner="one"), Dispatcher(sessions, owner="two")
    assert first.claim() == ann[0]
    assert second.claim() == bob  # ann has one running, bob none: bob's turn though his job is newer
    assert first.claim() == ann[1]  # both have one running; ann's last start is the older one
    with sessions() as session:
        running = {j.id: j.lease_owner for j in session.scalars(select(Job).where(Job.status == "running"))}
    assert running == {ann[0]: "one", bob: "two", ann[1]: "one"}
