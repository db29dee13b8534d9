"""What the service hands to MLflow as a job ends or changes hands: the per-variant comparisons
for the summary runs, and the closing of runs a dead dispatcher left RUNNING.

MLflow is for looking at runs; SQL keeps the numbers. A failure here is logged, never raised.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from service.results import variant_rows
from service.style import is_style_job

log = logging.getLogger("srm_bench.mlflow")


def comparisons(trials: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per variant: fold count, gain over the baseline and (once the results carry them) the
    corrected t-test p-value and the Bayesian probability that the variant is better."""
    if any(is_style_job(t) for t in trials):  # a trial's spec says its task, as a job's does
        from service.style.results import mlflow_comparisons

        return mlflow_comparisons(trials)
    found: dict[str, dict[str, float]] = {}
    for row in variant_rows(trials):
        gain = row["gain"] or {}
        numbers = {"n_folds": row["n_folds"], "gain_top1": gain.get("gain_mean"),
                   "corrected_t_pvalue": gain.get("corrected_t_pvalue"),
                   "p_better": (gain.get("bayes") or {}).get("p_better")}
        found[row["variant"]] = {k: v for k, v in numbers.items() if v is not None}
    return found


def take_over_runs(job_id: str, parent_run: str) -> None:
    """A dispatcher takes over a job: the dead one's trial runs still RUNNING are closed as
    KILLED (their trials start again under new runs); the job's own run is re-attached."""
    from workers.tracking import close_running_runs

    try:
        closed = close_running_runs(parent_run, job_id, "KILLED", keep=[parent_run])
    except Exception:
        log.exception("job %s: could not close its stale MLflow runs", job_id)
        return
    if closed:
        log.info("job %s: closed %d MLflow runs left RUNNING as KILLED", job_id, len(closed))


def close_all_runs(job_id: str, parent_run: str, status: str) -> None:
    """The job has ended: none of its runs may stay RUNNING."""
    from workers.tracking import close_running_runs

    try:
        close_running_runs(parent_run, job_id, status)
    except Exception:
        log.exception("job %s: could not close its MLflow runs", job_id)


def finish_job_runs(job: Any, parent_run: str) -> dict[str, str] | None:
    """As a job ends: its trials' runs repaired, one summary run per variant over its succeeded trials
    (reused ones too), its run closed with the job's status and none of its runs left RUNNING.
    Returns {variant: summary run id}, or None when MLflow could not be reached (try again later)."""
    from workers.tracking import close_running_runs, end_job_run, log_variant_summaries

    mlflow_status = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}[job.status]
    try:
        made = repair_trial_runs(job.id, parent_run, job.trials)
        for trial in job.trials:
            trial.mlflow_run_id = made.get(trial.id, trial.mlflow_run_id)
        pairs = [(t.spec, t.metrics) for t in job.trials if t.status == "succeeded" and t.metrics]
        run_ids = log_variant_summaries(parent_run, pairs, comparisons(job.trials)) if pairs else {}
        end_job_run(parent_run, mlflow_status)
        close_running_runs(parent_run, job.id, "KILLED")
        return run_ids or {}
    except Exception:
        log.exception("job %s: could not bring its MLflow runs up to date", job.id)
        return None  # tried again later; closing runs now could mark finished trials KILLED


def repair_trial_runs(job_id: str, parent_run: str, trials: Sequence[Any]) -> dict[int, str]:
    """Every succeeded trial gets a FINISHED MLflow run with its final numbers, even if the tracking
    server was away when it ended. A run that was never made is made now (with the trial's curves
    from its stored result); one left open is given its final metrics and closed. Returns
    {trial id: run id} for trials whose run was made here. SQL had the numbers all along."""
    from mlflow.entities import Metric

    from workers.spec import TrialSpec
    from workers.tracking import SUMMARY_METRICS, client, log_trial

    todo = [t for t in trials if t.status == "succeeded" and t.metrics and not t.reused]
    if not todo:
        return {}
    mlflow = client()
    experiment = mlflow.get_run(parent_run).info.experiment_id
    finished = {run.info.run_id for run in mlflow.search_runs(
        [experiment], filter_string=f"tags.job_id = '{job_id}' and attributes.status = 'FINISHED'",
        max_results=50000)}
    made: dict[int, str] = {}
    for trial in todo:
        if trial.mlflow_run_id in finished:
            continue
        spec = TrialSpec.from_dict(trial.spec)
        if trial.mlflow_run_id:  # its params may be in already: only the final numbers, then close it
            final = {k: float(trial.metrics[k]) for k in SUMMARY_METRICS if trial.metrics.get(k) is not None}
            now = int(time.time() * 1000)
            mlflow.log_batch(trial.mlflow_run_id, metrics=[Metric(k, v, now, 0) for k, v in final.items()])
            mlflow.set_terminated(trial.mlflow_run_id, status="FINISHED")
        else:
            made[trial.id] = log_trial(parent_run, spec, trial.metrics)
        log.info("job %s: MLflow run of trial %s repaired", job_id, trial.id)
    return made
