"""Takes queued jobs from SQL and runs their unfinished trials on Ray through workers.

SQL is the truth. A dispatcher claims a job with a lease it renews while the job runs; if
the process dies, the lease runs out and the next dispatcher (or the restarted one) takes
the job over. Finished trials are never run again: each is written to SQL the moment it
ends, with a guard so that a trial ends exactly once. If the database is away at that moment,
the ended trial waits in memory and is written when it is back (retried with backoff); the job
is concluded only once every ended trial is in SQL. A trial handed to Tune stays queued
until Tune starts it; then each epoch updates its progress (one UPDATE). Several dispatchers may share one
PostgreSQL: claims use SELECT ... FOR UPDATE SKIP LOCKED plus a conditional UPDATE. One dispatcher
runs up to SRM_BENCH_MAX_RUNNING_JOBS jobs at once, one thread each, started round-robin by submitter.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service import db, leases, mlflow_sync, reports, settings
from service.analyses import queue_requested
from service.analysis_runner import AnalysisRunner
from service.models import FINISHED, Job, Trial, VariantSummary, utcnow
from service.results import write_summaries
from workers import ray_cluster
from workers.result import TrialResult

log = logging.getLogger("srm_bench.dispatcher")
T = TypeVar("T")
MAX_BACKOFF_S = 10.0
MLFLOW_RETRY_S = 5.0  # how often an idle dispatcher looks for jobs whose MLflow runs wait for a repair


def _jsonable(value: Any) -> Any:
    """Trial results may hold numpy scalars or NaN; SQL JSON wants plain, finite types."""
    if isinstance(value, dict):
        return {str(key): _jsonable(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(inner) for inner in value]
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _finite(value: Any) -> float | None:
    """A diverged trial may report NaN; SQL and JSON get None instead."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _trial_key(variant: str, repeat: int, fold: int | None, seed: int) -> tuple[str, int, int | None, int]:
    return variant, repeat, fold, seed


def _spec_key(spec: Any) -> tuple[str, int, int | None, int]:
    """A trial spec's key: trials of a job are told apart by (variant, repeat, fold, seed)."""
    return _trial_key(spec.variant_label(), spec.repeat, spec.fold, spec.seed)


class Dispatcher:
    """One claimant of jobs. `run_forever` in a thread (serve) or the foreground (`srm-bench dispatch`)."""

    def __init__(self, sessions: sessionmaker[Session] | None = None, owner: str | None = None,
                 lease_s: float | None = None, poll_s: float | None = None, max_jobs: int | None = None):
        self.sessions = sessions or db.session_factory()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=lease_s if lease_s is not None else settings.lease_seconds())
        self.poll_s = poll_s if poll_s is not None else settings.poll_seconds()
        self.max_jobs = max_jobs or settings.current().max_running_jobs
        self.jobs: dict[str, threading.Thread] = {}  # the jobs this dispatcher runs now, one thread each
        self.stop_event = threading.Event()
        self.analyses = AnalysisRunner(self.sessions, self.owner, self.lease, self.stop_event)
        self._ray_error: str | None = None
        self._unwritten: dict[int, tuple[str, TrialResult | None, str | None]] = {}  # ended, not yet in SQL
        self._unwritten_lock = threading.Lock()
        self._mlflow_checked_at = 0.0  # when jobs that ended while MLflow was away were last looked for

    # --- claiming ------------------------------------------------------------------------

    def claim(self) -> str | None:
        """Take the next submitter's oldest queued job (round-robin by submitter), or a running one whose
        dispatcher stopped renewing its lease."""
        job_id = leases.claim_job(self.sessions, self.owner, self.lease, running_here=list(self.jobs))
        if job_id is not None:
            log.info("dispatcher %s claimed job %s", self.owner, job_id)
        return job_id

    def _renew(self, job_id: str) -> tuple[bool, bool]:
        """Extend the lease; returns (still ours, cancel requested)."""
        owned = leases.renew(self.sessions, Job, job_id, self.owner, self.lease)
        with self.sessions() as session:
            cancel = bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
        return owned, cancel

    # --- running a job -------------------------------------------------------------------

    def run_forever(self) -> None:
        """Keep up to ``max_jobs`` jobs running, each in its own thread; they share the Ray cluster,
        whose resources decide which trials actually run. Analyses run here between claims."""
        log.info("dispatcher %s polling every %.1fs, up to %d jobs at once", self.owner, self.poll_s, self.max_jobs)
        try:
            while not self.stop_event.is_set():
                if not self._ray_ready():  # jobs stay queued rather than failing trial by trial
                    self.stop_event.wait(max(self.poll_s, 5.0))
                    continue
                self.jobs = {job_id: thread for job_id, thread in self.jobs.items() if thread.is_alive()}
                job_id = self._claim_quietly() if len(self.jobs) < self.max_jobs else None
                if job_id is not None:
                    self._start_job_thread(job_id)
                    continue
                if time.monotonic() - self._mlflow_checked_at > MLFLOW_RETRY_S:
                    self._mlflow_checked_at = time.monotonic()
                    self._sync_pending_quietly()
                if not self.analyses.run_next():
                    self.stop_event.wait(self.poll_s)
        finally:
            for thread in list(self.jobs.values()):  # stopping: each job releases its unfinished trials
                thread.join()

    def _claim_quietly(self) -> str | None:
        try:
            return self.claim()
        except Exception:  # the database is away: keep polling, it may come back
            log.exception("dispatcher %s: could not claim a job", self.owner)
            return None

    def _sync_pending_quietly(self) -> None:
        try:
            self._sync_pending_mlflow()
        except Exception as err:  # the database is away: the marks wait in SQL
            if not db.is_unavailable(err):
                log.exception("dispatcher %s: repairing MLflow runs failed", self.owner)

    def _start_job_thread(self, job_id: str) -> None:
        thread = threading.Thread(target=self.run_job_safely, args=(job_id,), name=f"job-{job_id[:8]}", daemon=True)
        self.jobs[job_id] = thread
        thread.start()

    def run_job_safely(self, job_id: str) -> None:
        try:
            self.run_job(job_id)
        except Exception as err:  # one broken job must not stop the service, nor be retried forever
            log.exception("job %s: dispatcher error", job_id)
            self._fail_job(job_id, f"dispatcher error: {type(err).__name__}: {err}")

    def stop(self) -> None:
        self.stop_event.set()

    def _ray_ready(self) -> bool:
        """Whether the Ray cluster accepts us; its refusal is logged once each time it changes."""
        check = ray_cluster.status()
        error = check.get("error")
        if error != self._ray_error:
            if error:
                log.error("dispatcher %s: not taking jobs: %s", self.owner, error)
            elif self._ray_error:
                log.info("dispatcher %s: Ray at %s accepts us again", self.owner, check.get("address"))
            self._ray_error = error
        return error is None

    def run_job(self, job_id: str) -> None:
        stop = threading.Event()
        flags = {"cancel": False, "lost": False}
        heartbeat = threading.Thread(target=self._heartbeat, args=(job_id, stop, flags), daemon=True,
                                     name=f"lease-{job_id[:8]}")
        heartbeat.start()  # from the claim on: preparing trials and MLflow may take longer than a lease
        try:
            self._run_claimed(job_id, stop, flags)
        finally:
            stop.set()
            heartbeat.join()

    def _run_claimed(self, job_id: str, stop: threading.Event, flags: dict[str, bool]) -> None:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job.cancel_requested:
                self._finish(session, job, cancelled=True)
                return
            to_run = self._prepare_trials(session, job)
            spec, name, parent_run = job.spec, job.name, job.mlflow_run_id
        if parent_run:  # taken over: re-attach to the job's run, close the runs its trials left open
            mlflow_sync.take_over_runs(job_id, parent_run)
        parent_run = parent_run or self._start_mlflow_run(job_id, name, spec)
        outcomes: list[Any] = []
        if to_run and not stop.is_set():
            try:
                outcomes = self._run_on_ray(job_id, spec, to_run, parent_run, stop, flags)
            except Exception as err:  # Ray unreachable, experiment crashed: the job fails, saying why
                log.exception("job %s failed on Ray", job_id)
                self._fail_unfinished(job_id, f"{type(err).__name__}: {err}")
        self._write_unwritten(block=True)  # ended trials kept while the database was away
        stop.set()  # the heartbeat's last word on cancel/lease is in flags from here on
        self._until_written(lambda: self._conclude(job_id, flags, outcomes, parent_run), f"job {job_id}")

    def _conclude(self, job_id: str, flags: dict[str, bool], outcomes: list[Any], parent_run: str | None) -> None:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if flags["lost"]:
                log.warning("job %s: lease lost to another dispatcher; leaving it", job_id)
            elif self.stop_event.is_set() and not flags["cancel"]:
                self._release(session, job)
            else:
                self._finish(session, job, cancelled=flags["cancel"] or job.cancel_requested,
                             outcomes=outcomes, parent_run=parent_run)

    def _heartbeat(self, job_id: str, stop: threading.Event, flags: dict[str, bool]) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while not stop.wait(interval):
            try:
                owned, cancel = self._renew(job_id)
            except Exception as err:
                if db.is_unavailable(err):  # the lease is ours again once the database is back
                    log.warning("job %s: lease not renewed, the database is unavailable", job_id)
                else:
                    log.exception("job %s: lease renewal failed", job_id)
                continue
            if cancel or not owned:
                flags["cancel"], flags["lost"] = cancel, not owned
                stop.set()

    def _prepare_trials(self, session: Session, job: Job) -> list[Trial]:
        """Requeue trials a dead dispatcher left running and reuse identical finished trials; the rest
        stay queued (with a new attempt) until Tune starts them."""
        now = utcnow()
        trials = list(session.scalars(select(Trial).where(Trial.job_id == job.id).order_by(Trial.id)))
        pending = [t for t in trials if t.status not in FINISHED]
        donors = self._donors(session, job.id, {t.content_hash for t in pending})
        to_run = []
        for trial in pending:
            donor = donors.get(trial.content_hash)
            if donor is not None:
                trial.status, trial.reused, trial.reused_from = "succeeded", True, donor.reused_from or donor.id
                trial.top1, trial.top5, trial.metrics = donor.top1, donor.top5, donor.metrics
                trial.train_time_s, trial.device = donor.train_time_s, donor.device
                trial.mlflow_run_id = donor.mlflow_run_id
                trial.progress, trial.epoch, trial.val_top1 = 1.0, donor.epoch, donor.val_top1
                trial.weights_uri = donor.weights_uri
                trial.started_at = trial.finished_at = now
            else:
                trial.status, trial.attempts, trial.started_at, trial.error = "queued", trial.attempts + 1, None, None
                trial.progress = trial.epoch = trial.val_top1 = None  # a new attempt trains from the start
                to_run.append(trial)
        session.commit()
        return to_run

    @staticmethod
    def _donors(session: Session, job_id: str, hashes: set[str]) -> dict[str, Trial]:
        if not hashes:
            return {}
        rows = session.scalars(select(Trial).where(Trial.content_hash.in_(hashes), Trial.status == "succeeded",
                                                   Trial.job_id != job_id).order_by(Trial.id))
        donors: dict[str, Trial] = {}
        for row in rows:
            donors.setdefault(row.content_hash, row)
        return donors

    def _start_mlflow_run(self, job_id: str, name: str | None, spec: dict[str, Any]) -> str | None:
        from workers.tracking import client, start_job_run

        try:
            run_id = start_job_run(job_id, name, spec)
            experiment_id = client().get_run(run_id).info.experiment_id
        except Exception:  # tracking is for curves and artifacts; SQL keeps the numbers either way
            log.exception("job %s: could not start its MLflow run", job_id)
            return None
        with self.sessions() as session:
            session.execute(update(Job).where(Job.id == job_id)
                            .values(mlflow_run_id=run_id, mlflow_experiment_id=experiment_id))
            session.commit()
        return run_id

    def _run_on_ray(self, job_id: str, spec: dict[str, Any], trials: list[Trial], parent_run: str | None,
                    stop: threading.Event, flags: dict[str, bool]) -> list[Any]:
        from workers.experiment import run_experiment
        from workers.tasks import spec_from_dict

        specs = [spec_from_dict(t.spec) for t in trials]  # a TrialSpec or a StyleTrialSpec, by its task
        trial_ids = {_trial_key(t.variant, t.repeat, t.fold, t.seed): t.id for t in trials}

        def on_trial_complete(trial_spec, result, error) -> None:
            trial_id = trial_ids[_spec_key(trial_spec)]
            if result is not None and error is None:
                self._record(trial_id, "succeeded", result, None)
            elif flags["cancel"]:
                self._record(trial_id, "cancelled", None, error)
            elif not (self.stop_event.is_set() or flags["lost"]):
                self._record(trial_id, "failed", None, error)
            # else: stopped by a shutdown, not by its own fault; it stays unfinished and is requeued

        def on_trial_progress(trial_spec, progress: dict) -> None:
            self._progress(trial_ids[_spec_key(trial_spec)], progress)

        # A fresh Tune experiment per attempt: trials that SQL has as finished are never handed over again.
        attempt = max(t.attempts for t in trials)
        resources = spec.get("resources") or {}
        return run_experiment(f"job-{job_id}-attempt{attempt}", specs, data_dir=str(settings.data_dir()),
                              resources={"cpu": resources.get("cpus", 1), "gpu": resources.get("gpus", 0)},
                              mlflow_parent_run_id=parent_run, on_trial_complete=on_trial_complete,
                              on_trial_progress=on_trial_progress,
                              should_stop=lambda: stop.is_set() or self.stop_event.is_set())

    def _progress(self, trial_id: int, progress: dict[str, Any]) -> None:
        """One UPDATE per start or epoch: the trial runs, with how far it got and its MLflow run."""
        epoch, epochs = int(progress.get("epoch") or 0), progress.get("epochs")
        values: dict[str, Any] = {"status": "running", "epoch": epoch,
                                  "progress": min(epoch / epochs, 1.0) if epochs else None}
        val_top1 = _finite((progress.get("metrics") or {}).get("val_top1"))
        if val_top1 is not None:
            values["val_top1"] = val_top1
        if progress.get("mlflow_run_id"):
            values["mlflow_run_id"] = progress["mlflow_run_id"]
        if epoch == 0:
            values["started_at"] = utcnow()
        try:
            with self.sessions() as session:
                session.execute(update(Trial).where(Trial.id == trial_id, Trial.status.not_in(FINISHED))
                                .values(**values))
                session.commit()
        except Exception as err:
            if not db.is_unavailable(err):
                raise
            log.warning("trial %s: progress not written, the database is unavailable", trial_id)  # the next will

    def _until_written(self, write: Callable[[], T], what: str) -> T:
        """Run a SQL write, retrying with growing pauses while the database is unavailable; a shutdown
        gives up (the trials not written are then requeued and run again by the next dispatcher)."""
        delay = 0.5
        while True:
            try:
                return write()
            except Exception as err:
                if not db.is_unavailable(err) or self.stop_event.is_set():
                    raise
                log.warning("%s: the database is unavailable (%s); retrying in %.1f s", what,
                            str(err).splitlines()[0], delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _record(self, trial_id: int, status: str, result: TrialResult | None, error: str | None) -> None:
        """An ended trial goes to SQL now, or waits in memory until the database is back."""
        with self._unwritten_lock:
            self._unwritten[trial_id] = (status, result, error)
        self._write_unwritten(block=False)

    def _write_unwritten(self, block: bool) -> None:
        """Write the ended trials kept in memory; with block, wait for the database until all are in."""
        with self._unwritten_lock:
            for trial_id in list(self._unwritten):
                status, result, error = self._unwritten[trial_id]
                try:
                    if block:
                        self._until_written(lambda t=trial_id, s=status, r=result, e=error: self._write_trial(
                            t, s, r, e), f"trial {trial_id}")
                    else:
                        self._write_trial(trial_id, status, result, error)
                except Exception as err:
                    if block or not db.is_unavailable(err):
                        raise
                    log.warning("%d ended trials kept in memory until the database is back",
                                len(self._unwritten))
                    return
                del self._unwritten[trial_id]

    def _write_trial(self, trial_id: int, status: str, result: TrialResult | None, error: str | None) -> None:
        """Write one ended trial; the status guard makes a second report of the same trial a no-op."""
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
        if result is not None:
            stored = _jsonable(result)  # the TrialResult as plain, finite JSON: the trials.metrics column
            values |= {"top1": _finite(stored.get("top1")), "top5": _finite(stored.get("top5")), "metrics": stored,
                       "train_time_s": stored.get("train_time_s"), "device": stored.get("device"),
                       "weights_uri": stored.get("weights_uri")}
            if status == "succeeded":
                values |= {"progress": 1.0, "epoch": stored.get("epochs")}
            if stored.get("mlflow_run_id"):
                values["mlflow_run_id"] = stored["mlflow_run_id"]
        with self.sessions() as session:
            written = session.execute(update(Trial).where(Trial.id == trial_id, Trial.status.not_in(FINISHED))
                                      .values(**values)).rowcount
            session.commit()
        if not written:
            log.warning("trial %s was already finished; ignoring a second report", trial_id)

    def _fail_job(self, job_id: str, error: str) -> None:
        try:
            self._fail_unfinished(job_id, error)
            with self.sessions() as session:
                session.execute(update(Trial).where(Trial.job_id == job_id, Trial.status == "queued")
                                .values(status="failed", error=error, finished_at=utcnow()))
                session.execute(update(Job).where(Job.id == job_id).values(
                    status="failed", finished_at=utcnow(), lease_owner=None, lease_expires_at=None))
                session.commit()
        except Exception:
            log.exception("job %s: could not mark it failed", job_id)

    def _fail_unfinished(self, job_id: str, error: str) -> None:
        with self.sessions() as session:
            session.execute(update(Trial).where(Trial.job_id == job_id, Trial.status.not_in(FINISHED))
                            .values(status="failed", error=error, finished_at=utcnow()))
            session.execute(update(Job).where(Job.id == job_id).values(error=error))
            session.commit()

    def _apply_outcomes(self, session: Session, job: Job, outcomes: list[Any]) -> None:
        """Outcomes whose callback never reached SQL are written now; trials learn their MLflow run ids."""
        trials = {_trial_key(t.variant, t.repeat, t.fold, t.seed): t for t in job.trials}
        for outcome in outcomes:
            spec = outcome.spec
            trial = trials.get(_spec_key(spec))
            if trial is None:
                continue
            if trial.status not in FINISHED:
                self._record(trial.id, outcome.status, outcome.result, outcome.error)
            run_id = getattr(outcome, "mlflow_run_id", None)
            if run_id and not trial.reused:
                session.execute(update(Trial).where(Trial.id == trial.id).values(mlflow_run_id=run_id))
        session.commit()
        session.expire_all()

    def _release(self, session: Session, job: Job) -> None:
        """Graceful shutdown: unfinished trials go back to the queue for the next dispatcher."""
        session.execute(update(Trial).where(Trial.job_id == job.id, Trial.status.not_in(FINISHED))
                        .values(status="queued", started_at=None, progress=None, epoch=None, val_top1=None))
        job.status, job.lease_owner, job.lease_expires_at = "queued", None, None
        session.commit()
        log.info("job %s released for another dispatcher", job.id)

    def _finish(self, session: Session, job: Job, cancelled: bool, outcomes: list[Any] | None = None,
                parent_run: str | None = None) -> None:
        self._apply_outcomes(session, job, outcomes or [])
        now = utcnow()
        for trial in job.trials:
            if trial.status not in FINISHED:
                trial.status = "cancelled" if cancelled else "failed"
                trial.error = trial.error or (None if cancelled else "trial ended without a result")
                trial.finished_at = now
        statuses = {t.status for t in job.trials}
        job.status = "cancelled" if cancelled else "failed" if "failed" in statuses else "succeeded"
        if job.status == "failed" and not job.error:
            failed = [t for t in job.trials if t.status == "failed"]
            job.error = f"{len(failed)} of {len(job.trials)} trials failed; first error: {failed[0].error}"
        job.finished_at, job.lease_owner, job.lease_expires_at = now, None, None
        session.flush()
        write_summaries(session, job, self._log_summaries(job, parent_run or job.mlflow_run_id))
        queue_requested(session, job)
        reports.publish_job_report(session, job.id)  # before the commit: a finished job has its report
        session.commit()
        log.info("job %s %s", job.id, job.status)

    def _log_summaries(self, job: Job, parent_run: str | None) -> dict[str, str]:
        """The job's MLflow runs brought up to date as it ends: its trials' runs, one summary run per variant
        and the job's run closed. If the tracking server is away, the job is marked for a later try."""
        if not parent_run:
            return {}
        run_ids = mlflow_sync.finish_job_runs(job, parent_run)
        job.mlflow_pending = run_ids is None
        if run_ids is None:
            log.warning("job %s: MLflow is unavailable; its runs are brought up to date when it is back", job.id)
        return run_ids or {}

    def _sync_pending_mlflow(self) -> None:
        """Repair the MLflow runs of jobs that ended while the tracking server was away. The mark is in
        SQL, so a restart keeps it; a conditional UPDATE makes one dispatcher take each job."""
        with self.sessions() as session:
            pending = list(session.scalars(select(Job.id).where(Job.mlflow_pending, Job.status.in_(FINISHED))
                                           .limit(20)))
        for job_id in pending:
            with self.sessions() as session:
                taken = session.execute(update(Job).where(Job.id == job_id, Job.mlflow_pending)
                                        .values(mlflow_pending=False)).rowcount == 1
                session.commit()
                if not taken:
                    continue
                job = session.get(Job, job_id)
                try:
                    run_ids = mlflow_sync.finish_job_runs(job, job.mlflow_run_id) if job.mlflow_run_id else {}
                except Exception:  # never let one job's MLflow records stop the dispatcher's loop
                    log.exception("job %s: bringing its MLflow runs up to date failed; retried later", job_id)
                    run_ids = None
                if run_ids is None:  # still away: the other marked jobs wait for the next look
                    job.mlflow_pending = True
                    session.commit()
                    return
                for summary in session.scalars(select(VariantSummary).where(VariantSummary.job_id == job_id)):
                    summary.mlflow_run_id = run_ids.get(summary.variant, summary.mlflow_run_id)
                session.commit()
            log.info("job %s: MLflow runs brought up to date", job_id)
