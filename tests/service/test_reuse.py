"""Reuse takes only a succeeded trial of another job with the same content hash, never a failed,
cancelled, running or queued one, however complete its numbers look."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from service.dispatcher import Dispatcher
from service.models import Job, Trial
from tests.service.factories import finished_job, queued_job


def _prepare(sessions, job_id):
    with sessions() as session:
        to_run = Dispatcher(sessions, owner="x")._prepare_trials(session, session.get(Job, job_id))
        ran = [t.id for t in to_run]
    with sessions() as session:
        return ran, session.scalars(select(Trial).where(Trial.job_id == job_id)).one()


@pytest.mark.parametrize("status", ["failed", "cancelled", "running", "queued"])
def test_an_unfinished_or_failed_trial_is_never_a_donor(sessions, status):
    with sessions() as session:
        other = finished_job(session, {"baseline": [0.9]}, status="failed" if status == "failed" else "running")
        candidate = other.trials[0]
        candidate.status = status  # top1, metrics and finished_at are all there, as a crash might leave them
        job = queued_job(session, n_trials=1)
        job.trials[0].content_hash = candidate.content_hash
        session.commit()
        job_id, trial_id = job.id, job.trials[0].id
    ran, trial = _prepare(sessions, job_id)
    assert ran == [trial_id]
    assert trial.status == "queued" and not trial.reused and trial.reused_from is None and trial.top1 is None


def test_a_succeeded_trial_is_taken_even_beside_failed_ones_with_the_same_hash(sessions):
    with sessions() as session:
        failed = finished_job(session, {"baseline": [0.1]}, status="failed")
        failed.trials[0].status = "failed"
        good = finished_job(session, {"baseline": [0.8]})
        good.trials[0].content_hash = failed.trials[0].content_hash
        job = queued_job(session, n_trials=1)
        job.trials[0].content_hash = failed.trials[0].content_hash
        session.commit()
        job_id, donor_id = job.id, good.trials[0].id
    ran, trial = _prepare(sessions, job_id)
    assert ran == []
    assert trial.status == "succeeded" and trial.reused and trial.reused_from == donor_id and trial.top1 == 0.8


def test_a_trial_never_reuses_one_of_its_own_job(sessions):
    with sessions() as session:
        job = queued_job(session, n_trials=2)
        first, second = job.trials
        first.status, first.top1, first.metrics = "succeeded", 0.6, {"top1": 0.6}
        second.content_hash = first.content_hash
        session.commit()
        job_id, second_id = job.id, second.id
    with sessions() as session:
        to_run = Dispatcher(sessions, owner="x")._prepare_trials(session, session.get(Job, job_id))
        assert [t.id for t in to_run] == [second_id]
