"""What the service hands to MLflow as a job ends or changes hands: the per-variant comparisons
for the summary runs, and the closing of runs a dead dispatcher left RUNNING.

MLflow is for looking at runs; SQL keeps the numbers. A failure here is logged, never raised.
"""
from __future__ import annotations

import logging
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
