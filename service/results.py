"""Aggregated cross-validation results of a job, its paper-style tables, and the leaderboard."""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from service.errors import JobNotFound
from service.models import Job, Trial, VariantSummary
from service.stats import describe, paired_comparison, power_note

BASELINE = "baseline"


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _metric(trial: Any, key: str) -> Any:
    """One key of the trial's stored TrialResult (workers/result.py), None when it has none."""
    return (trial.metrics or {}).get(key)


def _group_means(trials: Sequence[Any]) -> dict[str, float] | None:
    per_group: dict[str, list[float]] = defaultdict(list)
    for trial in trials:
        for group, value in (_metric(trial, "group_top1") or {}).items():
            per_group[group].append(value)
    return {group: _mean(values) for group, values in sorted(per_group.items())} or None


def variant_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per variant (in submission order): fold statistics and the paired gain over the baseline."""
    by_variant: dict[str, list[Any]] = defaultdict(list)
    for trial in sorted(trials, key=lambda t: t.id or 0):
        by_variant[trial.variant].append(trial)
    baseline = {(t.fold, t.seed): t.top1 for t in by_variant.get(BASELINE, []) if t.status == "succeeded"}
    rows = []
    for variant, group in by_variant.items():
        done = [t for t in group if t.status == "succeeded"]
        top1, top5 = describe([t.top1 for t in done]), describe([t.top5 for t in done])
        row: dict[str, Any] = {
            "variant": variant, "n_trials": len(group), "n_folds": len(done),
            "top1_mean": top1["mean"], "top1_std": top1["std"], "top1_ci95": [top1["ci_low"], top1["ci_high"]],
            "top5_mean": top5["mean"], "top5_std": top5["std"], "top5_ci95": [top5["ci_low"], top5["ci_high"]],
            "group_top1": _group_means(done),
            "params": _metric(done[0], "params") if done else None,
            "macs": _metric(done[0], "macs") if done else None,
            "images_per_s": _mean([_metric(t, "images_per_s") for t in done]),
            "gain": None,
        }
        if variant != BASELINE and baseline:
            pairs = [(baseline[(t.fold, t.seed)], t.top1) for t in done if (t.fold, t.seed) in baseline]
            row["gain"] = paired_comparison([a for a, _ in pairs], [b for _, b in pairs])
        rows.append(row)
    return rows


def fold_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"variant": t.variant, "fold": t.fold, "seed": t.seed, "status": t.status, "top1": t.top1,
             "top5": t.top5, "group_top1": _metric(t, "group_top1"), "reused": t.reused, "device": t.device,
             "train_time_s": t.train_time_s, "images_per_s": _metric(t, "images_per_s"),
             "mlflow_run_id": t.mlflow_run_id, "error": t.error}
            for t in sorted(trials, key=lambda t: (t.variant, t.seed, -1 if t.fold is None else t.fold))]


RESULT_COLUMNS = (Trial.id, Trial.variant, Trial.fold, Trial.seed, Trial.status, Trial.top1, Trial.top5,
                  Trial.metrics, Trial.reused, Trial.device, Trial.train_time_s, Trial.mlflow_run_id, Trial.error)

# The results endpoint's two queries, built once: building a statement costs SQLAlchemy more
# CPU than running it against the (job_id) index, and a reused statement hits the compiled cache.
JOB_COLUMNS = select(Job.id, Job.status, Job.dataset, Job.backbone, Job.protocol, Job.protocol_hash) \
    .where(Job.id == bindparam("job_id"))
TRIALS_OF_JOB = select(*RESULT_COLUMNS).where(Trial.job_id == bindparam("job_id")).order_by(Trial.id)


def job_results_by_id(session: Session, job_id: str) -> dict[str, Any]:
    """`job_results` for the API: plain rows of the needed columns, no ORM objects (the hot read path)."""
    job = session.execute(JOB_COLUMNS, {"job_id": job_id}).first()
    if job is None:
        raise JobNotFound(job_id)
    return job_results(session, job)


def job_results(session: Session, job: Any) -> dict[str, Any]:
    """Per-variant rows and per-fold rows of a job (a `Job` or a row with its id, status, dataset...)."""
    trials = session.execute(TRIALS_OF_JOB, {"job_id": job.id}).all()
    rows = variant_rows(trials)
    n_pairs = max((r["gain"]["n_pairs"] for r in rows if r["gain"]), default=0)
    return {"job_id": job.id, "status": job.status, "dataset": job.dataset, "backbone": job.backbone,
            "protocol": job.protocol, "protocol_hash": job.protocol_hash,
            "metric_note": "top1/top5 as reported by the trials; gain = variant minus baseline on the same fold "
                           "and seed",
            "test_note": power_note(n_pairs), "rows": rows, "folds": fold_rows(trials)}


# --- tables -----------------------------------------------------------------------------

def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _millions(value: Any) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}M"


def _percent_scale(rows: list[dict[str, Any]]) -> float:
    """Accuracies are shown in percent, like the paper, whether trials report fractions or percent."""
    means = [r["top1_mean"] for r in rows if r["top1_mean"] is not None]
    return 100.0 if means and max(means) <= 1.0 else 1.0


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of the paper-style table (shared by markdown and the CLI)."""
    scale = _percent_scale(results["rows"])

    def pct(value: float | None) -> str:
        return _fmt(None if value is None else value * scale)

    groups = sorted({g for row in results["rows"] for g in (row["group_top1"] or {})})
    header = (["variant", "folds", "params", "MACs", "top-1 (%)", "top-5 (%)", "top-1 95% CI"]
              + [f"{g} top-1" for g in groups]
              + ["gain top-1", "t-test p", "Wilcoxon p", "images/s"])
    cells = []
    for row in results["rows"]:
        gain = row["gain"] or {}
        low, high = row["top1_ci95"]
        cells.append([
            row["variant"], str(row["n_folds"]), _millions(row["params"]), _millions(row["macs"]),
            f"{pct(row['top1_mean'])} ± {pct(row['top1_std'])}",
            f"{pct(row['top5_mean'])} ± {pct(row['top5_std'])}",
            "-" if low is None else f"[{pct(low)}, {pct(high)}]",
            *[pct((row["group_top1"] or {}).get(g)) for g in groups],
            "-" if gain.get("gain_mean") is None else f"{gain['gain_mean'] * scale:+.2f}",
            _fmt(gain.get("t_pvalue"), 4), _fmt(gain.get("wilcoxon_pvalue"), 4), _fmt(row["images_per_s"], 0),
        ])
    return header, cells


def to_markdown(results: dict[str, Any]) -> str:
    header, cells = table_rows(results)
    lines = [f"**{results['dataset']}, {results['backbone']}, protocol {results['protocol']}** "
             f"(job {results['job_id']}, {results['status']})", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    lines += ["", f"Mean ± std over folds. {results['test_note']}."]
    return "\n".join(lines) + "\n"


def to_csv(results: dict[str, Any]) -> str:
    """Variant rows with raw numbers (not percent-formatted), one column per field."""
    groups = sorted({g for row in results["rows"] for g in (row["group_top1"] or {})})
    fields = ["variant", "n_folds", "n_trials", "top1_mean", "top1_std", "top1_ci_low", "top1_ci_high",
              "top5_mean", "top5_std", "params", "macs", "images_per_s"] + [f"top1_{g}" for g in groups] + [
              "gain_top1", "t_pvalue", "wilcoxon_pvalue", "min_wilcoxon_pvalue"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in results["rows"]:
        gain = row["gain"] or {}
        writer.writerow({**{k: row[k] for k in fields if k in row},
                         "top1_ci_low": row["top1_ci95"][0], "top1_ci_high": row["top1_ci95"][1],
                         **{f"top1_{g}": (row["group_top1"] or {}).get(g) for g in groups},
                         "gain_top1": gain.get("gain_mean"), "t_pvalue": gain.get("t_pvalue"),
                         "wilcoxon_pvalue": gain.get("wilcoxon_pvalue"),
                         "min_wilcoxon_pvalue": gain.get("min_wilcoxon_pvalue")})
    return out.getvalue()


# --- summaries and leaderboard ----------------------------------------------------------

def write_summaries(session: Session, job: Job, mlflow_runs: dict[str, str] | None = None) -> None:
    """Replace the job's per-variant summaries with ones computed from its finished trials."""
    trials = list(session.scalars(select(Trial).where(Trial.job_id == job.id)))
    session.query(VariantSummary).filter(VariantSummary.job_id == job.id).delete()
    for row in variant_rows(trials):
        if row["n_folds"] == 0:
            continue
        session.add(VariantSummary(
            job_id=job.id, variant=row["variant"], dataset=job.dataset, backbone=job.backbone,
            protocol=job.protocol, protocol_hash=job.protocol_hash, n_trials=row["n_folds"],
            top1_mean=row["top1_mean"], top1_std=row["top1_std"], top5_mean=row["top5_mean"],
            top5_std=row["top5_std"], params=row["params"], macs=row["macs"], images_per_s=row["images_per_s"],
            group_top1=row["group_top1"], mlflow_run_id=(mlflow_runs or {}).get(row["variant"])))


def _pooled(n: float, total: float, total_sq: float) -> tuple[float | None, float | None]:
    """Mean and sample std of all trials from per-job sums (exact, not a mean of means)."""
    if not n:
        return None, None
    mean = total / n
    std = math.sqrt(max(total_sq - n * mean * mean, 0.0) / (n - 1)) if n > 1 else None
    return mean, std


def _leaderboard_query(filters: tuple[str, ...]) -> Select:
    """Per-variant sums over the summaries table, filtered on the named columns (bound per call)."""
    s = VariantSummary
    top1_sq = (s.n_trials - 1) * func.coalesce(s.top1_std, 0.0) * func.coalesce(s.top1_std, 0.0) \
        + s.n_trials * s.top1_mean * s.top1_mean
    top5_sq = (s.n_trials - 1) * func.coalesce(s.top5_std, 0.0) * func.coalesce(s.top5_std, 0.0) \
        + s.n_trials * s.top5_mean * s.top5_mean
    query = (select(s.dataset, s.backbone, s.protocol, s.protocol_hash, s.variant,
                    func.count(s.job_id), func.sum(s.n_trials),
                    func.sum(s.n_trials * s.top1_mean), func.sum(top1_sq),
                    func.sum(case((s.top5_mean.is_not(None), s.n_trials), else_=0)),
                    func.sum(s.n_trials * s.top5_mean), func.sum(top5_sq),
                    func.max(s.params), func.max(s.macs), func.avg(s.images_per_s))
             .group_by(s.dataset, s.backbone, s.protocol, s.protocol_hash, s.variant))
    for name in filters:
        query = query.where(getattr(s, name) == bindparam(name))
    return query


# One prebuilt statement per combination of filters (8 in all): see TRIALS_OF_JOB.
_LEADERBOARD_QUERIES: dict[tuple[str, ...], Select] = {}


def leaderboard(session: Session, dataset: str | None = None, backbone: str | None = None,
                protocol: str | None = None) -> list[dict[str, Any]]:
    """Per (dataset, backbone, protocol hash): every variant pooled over all finished jobs, best top-1 first.

    Summaries exist only for finished jobs (the dispatcher writes them as a job ends), so this
    reads the small summaries table alone, never the trials.
    """
    values = {name: value for name, value in
              (("dataset", dataset), ("backbone", backbone), ("protocol", protocol)) if value}
    filters = tuple(values)
    if filters not in _LEADERBOARD_QUERIES:
        _LEADERBOARD_QUERIES[filters] = _leaderboard_query(filters)
    boards: dict[tuple, dict[str, Any]] = {}
    for (ds, bb, proto, phash, variant, n_jobs, n, t1, t1sq, n5, t5, t5sq, params, macs, ips) \
            in session.execute(_LEADERBOARD_QUERIES[filters], values):
        board = boards.setdefault((ds, bb, phash), {"dataset": ds, "backbone": bb, "protocol": proto,
                                                    "protocol_hash": phash, "rows": []})
        top1_mean, top1_std = _pooled(n, t1, t1sq)
        top5_mean, top5_std = _pooled(n5, t5 or 0.0, t5sq or 0.0)
        board["rows"].append({"variant": variant, "n_jobs": n_jobs, "n_trials": n, "top1_mean": top1_mean,
                              "top1_std": top1_std, "top5_mean": top5_mean, "top5_std": top5_std,
                              "params": params, "macs": macs, "images_per_s": ips})
    result = list(boards.values())
    for board in result:
        board["rows"].sort(key=lambda r: -(r["top1_mean"] or float("-inf")))
        board["n_jobs"] = max(r["n_jobs"] for r in board["rows"])
    result.sort(key=lambda b: (b["dataset"], b["backbone"], -b["n_jobs"]))
    return result
