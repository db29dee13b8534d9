"""Runs queued analyses: one Ray task per trained trial, each part written to SQL as it ends.

An analysis is claimed with a lease like a job (service.leases). Its parts (one per succeeded trial
of a gated variant) are rows of their own, so after a crash the next claimant runs only the parts
still missing, then sums up, draws the plots, logs both to the job's MLflow run and stores the result.
A trial whose weights cannot be loaded fails its own part, with the reason; the others still run.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service import leases, settings
from service.analyses import gated_layout
from service.analysis_report import SUMMARIES, Part, draw
from service.models import Analysis, AnalysisTrial, Job, Trial, utcnow

log = logging.getLogger("srm_bench.analyses")


def analysis_dir(analysis_id: str) -> Path:
    """Plots, top-image thumbnails and kept gates of one analysis."""
    return settings.home() / "analyses" / analysis_id


def _error_text(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or err  # a Ray task error wraps the worker's exception
    return f"{type(cause).__name__}: {cause}"


class AnalysisRunner:
    """Claims analyses and runs them; the dispatcher calls :meth:`run_next` when no job is waiting."""

    def __init__(self, sessions: sessionmaker[Session], owner: str, lease: timedelta, stop_event: threading.Event):
        self.sessions, self.owner, self.lease, self.stop_event = sessions, owner, lease, stop_event

    def run_next(self) -> bool:
        """Run one claimable analysis to its end (or to a shutdown); False when there was none."""
        try:
            analysis_id = leases.claim(self.sessions, Analysis, self.owner, self.lease)
        except Exception:
            log.exception("could not claim an analysis")
            return False
        if analysis_id is None:
            return False
        log.info("dispatcher %s claimed analysis %s", self.owner, analysis_id)
        stop = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(analysis_id, stop), daemon=True)
        heartbeat.start()
        try:
            self._run(analysis_id, stop)
        except Exception as err:  # a broken analysis must not stop the dispatcher
            log.exception("analysis %s failed", analysis_id)
            self._end(analysis_id, "failed", error=_error_text(err))
        finally:
            stop.set()
            heartbeat.join()
        return True

    def _heartbeat(self, analysis_id: str, stop: threading.Event) -> None:
        while not stop.wait(max(self.lease.total_seconds() / 3, 0.2)):
            try:
                if not leases.renew(self.sessions, Analysis, analysis_id, self.owner, self.lease):
                    stop.set()
            except Exception:
                log.exception("analysis %s: lease renewal failed", analysis_id)

    def _parts(self, session: Session, analysis: Analysis, job: Job) -> list[tuple[AnalysisTrial, Trial]]:
        """One part per succeeded trial of a gated variant, created on the first claim."""
        from workers.protocols import get_protocol

        image_size = get_protocol(job.spec["protocol"], job.spec.get("overrides") or None).image_size
        gated = gated_layout(job.backbone, job.spec["variants"], image_size)
        trials = session.scalars(select(Trial).where(Trial.job_id == job.id, Trial.status == "succeeded",
                                                     Trial.variant.in_(list(gated))).order_by(Trial.id)).all()
        existing = {part.trial_id: part for part in analysis.parts}
        for trial in trials:
            if trial.id not in existing:
                existing[trial.id] = AnalysisTrial(analysis_id=analysis.id, trial_id=trial.id, status="queued")
                session.add(existing[trial.id])
        session.commit()
        return [(existing[t.id], t) for t in trials]

    def _run(self, analysis_id: str, stop: threading.Event) -> None:
        with self.sessions() as session:
            analysis = session.get(Analysis, analysis_id)
            job = session.get(Job, analysis.job_id)
            parts = self._parts(session, analysis, job)
            pending = [(part.id, trial.id, trial.spec, trial.weights_uri) for part, trial in parts
                       if part.status != "succeeded" and part.status != "failed"]
            kind, options, resources = analysis.kind, dict(analysis.options), job.spec.get("resources") or {}
        if pending:
            self._run_on_ray(kind, options, pending, resources, analysis_dir(analysis_id), stop)
        if self.stop_event.is_set() or stop.is_set():
            self._release(analysis_id)
            return
        self._finish(analysis_id)

    def _run_on_ray(self, kind: str, options: dict[str, Any], pending: list, resources: dict, folder: Path,
                    stop: threading.Event) -> None:
        import ray

        from workers import ray_cluster
        from workers.analysis import run_trial_analysis
        from workers.experiment import _trial_resources

        ray_cluster.connect()
        wanted = _trial_resources({"cpu": resources.get("cpus", 1), "gpu": resources.get("gpus", 0)})
        task = ray.remote(run_trial_analysis).options(num_cpus=wanted["cpu"], num_gpus=wanted["gpu"],
                                                      max_retries=1)
        from workers.tracking import tracking_uri

        where = {"data_dir": str(settings.data_dir()), "tracking_uri": tracking_uri(),
                 "threads": max(1, int(wanted["cpu"]))}
        running = {task.remote(kind, spec, weights, options, **where): (part_id, trial_id)
                   for part_id, trial_id, spec, weights in pending}
        while running:
            if self.stop_event.is_set() or stop.is_set():
                for ref in running:
                    ray.cancel(ref, force=True)
                return
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                part_id, trial_id = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # this trial's part fails, with the reason; the others go on
                    log.warning("analysis part for trial %s failed: %s", trial_id, _error_text(err))
                    self._write_part(part_id, "failed", error=_error_text(err))
                    continue
                self._write_part(part_id, "succeeded", result=self._keep_arrays(result, trial_id, folder))

    @staticmethod
    def _keep_arrays(result: dict[str, Any], trial_id: int, folder: Path) -> dict[str, Any]:
        """Arrays go to files beside the plots; SQL gets the numbers."""
        folder.mkdir(parents=True, exist_ok=True)
        if "_thumbnails" in result:
            np.save(folder / f"top-{trial_id}.npy", result["_thumbnails"])
        if "_gates" in result:
            np.savez_compressed(folder / f"gates-{trial_id}.npz", **result["_gates"])
            result["gates_file"] = str(folder / f"gates-{trial_id}.npz")
        return {k: v for k, v in result.items() if not k.startswith("_")}

    def _write_part(self, part_id: int, status: str, result: dict | None = None, error: str | None = None) -> None:
        with self.sessions() as session:
            session.execute(update(AnalysisTrial).where(AnalysisTrial.id == part_id).values(
                status=status, result=result, error=error, finished_at=utcnow()))
            session.commit()

    def _release(self, analysis_id: str) -> None:
        """A shutdown mid-analysis: back to the queue, finished parts kept."""
        with self.sessions() as session:
            session.execute(update(Analysis).where(Analysis.id == analysis_id, Analysis.lease_owner == self.owner)
                            .values(status="queued", lease_owner=None, lease_expires_at=None))
            session.commit()

    def _finish(self, analysis_id: str) -> None:
        with self.sessions() as session:
            analysis = session.get(Analysis, analysis_id)
            job = session.get(Job, analysis.job_id)
            rows = session.execute(select(AnalysisTrial, Trial).join(Trial, Trial.id == AnalysisTrial.trial_id)
                                   .where(AnalysisTrial.analysis_id == analysis_id)
                                   .order_by(Trial.id)).all()
            kind, parent_run = analysis.kind, job.mlflow_run_id
        done = [Part(t.id, t.variant, t.fold, t.seed, p.result) for p, t in rows if p.status == "succeeded"]
        failed = [{"trial_id": t.id, "variant": t.variant, "fold": t.fold, "seed": t.seed, "error": p.error}
                  for p, t in rows if p.status == "failed"]
        if not done:
            first = failed[0]["error"] if failed else "the job has no trained trial of a gated variant"
            self._end(analysis_id, "failed", error=f"{len(failed)} of {len(rows)} trials failed; first error: {first}")
            return
        summary = {**SUMMARIES[kind](done), "failed_trials": failed}
        plots = draw(kind, summary, done, analysis_dir(analysis_id))
        self._log_to_mlflow(parent_run, analysis_id, kind, summary, plots)
        error = f"{len(failed)} of {len(rows)} trials failed; see result.failed_trials" if failed else None
        self._end(analysis_id, "succeeded", result=summary, plots=plots, error=error)

    @staticmethod
    def _log_to_mlflow(parent_run: str | None, analysis_id: str, kind: str, summary: dict, plots: dict) -> None:
        if not parent_run:
            return
        from workers.tracking import log_analysis

        try:
            log_analysis(parent_run, analysis_id, analysis_metrics(kind, summary), list(plots.values()))
        except Exception:  # MLflow holds copies; SQL keeps the numbers either way
            log.exception("analysis %s: could not log to MLflow", analysis_id)

    def _end(self, analysis_id: str, status: str, result: dict | None = None, plots: dict | None = None,
             error: str | None = None) -> None:
        with self.sessions() as session:
            session.execute(update(Analysis).where(Analysis.id == analysis_id).values(
                status=status, result=result, plots=plots, error=error, finished_at=utcnow(),
                lease_owner=None, lease_expires_at=None))
            session.commit()
        log.info("analysis %s %s", analysis_id, status)


def analysis_metrics(kind: str, summary: dict[str, Any]) -> dict[str, float]:
    """The numbers an MLflow runs table can sort by: AUCs per stage, or the correlation sums."""
    metrics = {}
    if kind == "pruning":
        for variant, stages in summary["auc"].items():
            for stage, entry in stages.items():
                for order in ("gate", "random"):
                    if entry[order]["mean"] is not None:
                        metrics[f"pruning.{variant}.conv{stage}.auc_{order}_mean"] = entry[order]["mean"]
    else:
        for variant, sums in summary["sum_sq"].items():
            for key, described in sums.items():
                if described["mean"] is not None:
                    metrics[f"channel_weights.{variant}.sum_sq_{key}_mean"] = described["mean"]
            distinct = summary["distinct_top_images"][variant]["mean"]
            if distinct is not None:
                metrics[f"channel_weights.{variant}.distinct_top_images_mean"] = distinct
    return metrics
