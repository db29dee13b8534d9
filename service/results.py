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

from service.corrected import compare_to_baseline
from service.errors import JobNotFound
from service.models import Job, Trial, VariantSummary
from service.ranking import rank_variants
from service.schemas import DEFAULT_ROPE
from service.stats import describe, power_note
from service.style import STYLE_TRANSFER, is_style_job
from srm_models import BASELINE  # the plain network's name in jobs and tables (srm_models' one alias)


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


def trial_key(trial: Any) -> tuple[int, int | None, int]:
    """Trials of a job are told apart, and paired, by (repeat, fold, seed): never across splits."""
    return (trial.repeat or 0, trial.fold, trial.seed)


def _sortable(key: tuple[int, int | None, int]) -> tuple[int, int, int]:
    repeat, fold, seed = key
    return repeat, -1 if fold is None else fold, seed


def _key_dict(key: tuple[int, int | None, int]) -> dict[str, int | None]:
    return dict(zip(("repeat", "fold", "seed"), key, strict=True))


def test_train_ratio(trials: Sequence[Any]) -> float | None:
    """Mean n_test/n_train of the trials' splits (the corrected tests' correlation term)."""
    ratios = [_metric(t, "num_eval") / _metric(t, "num_train") for t in trials
              if _metric(t, "num_eval") and _metric(t, "num_train")]
    return math.fsum(ratios) / len(ratios) if ratios else None


def design(trials: Sequence[Any]) -> tuple[int, int, int]:
    """(folds, repeats, seeds) of a job, from its trials: the planner's pairs per repeat and repeats."""
    return (len({t.fold for t in trials}) or 1, len({t.repeat or 0 for t in trials}) or 1,
            len({t.seed for t in trials}) or 1)


def variant_rows(trials: Sequence[Any], rope: float = DEFAULT_ROPE) -> list[dict[str, Any]]:
    """One row per variant (in submission order): fold statistics and the gain over the baseline, paired
    on (repeat, fold, seed). Keys where either side has no result are listed, never dropped silently."""
    by_variant: dict[str, list[Any]] = defaultdict(list)
    for trial in sorted(trials, key=lambda t: t.id or 0):
        by_variant[trial.variant].append(trial)
    keys = sorted({trial_key(t) for t in trials}, key=_sortable)
    baseline = {trial_key(t): t for t in by_variant.get(BASELINE, []) if t.status == "succeeded"}
    job_design = design(trials)
    rows = []
    for variant, group in by_variant.items():
        done = [t for t in group if t.status == "succeeded"]
        by_key = {trial_key(t): t for t in done}
        top1, top5 = describe([t.top1 for t in done]), describe([t.top5 for t in done])
        compared = variant != BASELINE and BASELINE in by_variant
        paired = [k for k in keys if k in by_key and (k in baseline or not compared)]
        missing = [k for k in keys if k not in paired]
        row: dict[str, Any] = {
            "variant": variant, "n_trials": len(group), "n_succeeded": len(done),
            "n_folds": len({(t.repeat or 0, t.fold) for t in done}),
            "top1_mean": top1["mean"], "top1_std": top1["std"], "top1_ci95": [top1["ci_low"], top1["ci_high"]],
            "top5_mean": top5["mean"], "top5_std": top5["std"], "top5_ci95": [top5["ci_low"], top5["ci_high"]],
            "group_top1": _group_means(done),
            "params": _metric(done[0], "params") if done else None,
            "macs": _metric(done[0], "macs") if done else None,
            "images_per_s": _mean([_metric(t, "images_per_s") for t in done]),
            "incomplete": bool(missing), "missing": [_key_dict(k) for k in missing],
            "gain": None,
        }
        if compared:
            row["gain"] = compare_to_baseline([baseline[k].top1 for k in paired], [by_key[k].top1 for k in paired],
                                              test_train_ratio([by_key[k] for k in paired]), rope, job_design)
        rows.append(row)
    return rows


def fold_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"variant": t.variant, "repeat": t.repeat or 0, "fold": t.fold, "seed": t.seed, "status": t.status,
             "top1": t.top1, "top5": t.top5, "num_train": _metric(t, "num_train"),
             "num_eval": _metric(t, "num_eval"), "group_top1": _metric(t, "group_top1"), "reused": t.reused,
             "device": t.device, "train_time_s": t.train_time_s, "images_per_s": _metric(t, "images_per_s"),
             "mlflow_run_id": t.mlflow_run_id, "error": t.error}
            for t in sorted(trials, key=lambda t: (t.variant, t.seed, *_sortable(trial_key(t))))]


RESULT_COLUMNS = (Trial.id, Trial.variant, Trial.repeat, Trial.fold, Trial.seed, Trial.status, Trial.top1,
                  Trial.top5, Trial.metrics, Trial.reused, Trial.device, Trial.train_time_s, Trial.mlflow_run_id,
                  Trial.error)

# The results endpoint's two queries, built once: building a statement costs SQLAlchemy more
# CPU than running it against the (job_id) index, and a reused statement hits the compiled cache.
JOB_COLUMNS = select(Job.id, Job.status, Job.dataset, Job.backbone, Job.protocol, Job.protocol_hash, Job.spec) \
    .where(Job.id == bindparam("job_id"))
TRIALS_OF_JOB = select(*RESULT_COLUMNS).where(Trial.job_id == bindparam("job_id")).order_by(Trial.id)


def job_results_by_id(session: Session, job_id: str, rope: float | None = None) -> dict[str, Any]:
    """`job_results` for the API: plain rows of the needed columns, no ORM objects (the hot read path)."""
    job = session.execute(JOB_COLUMNS, {"job_id": job_id}).first()
    if job is None:
        raise JobNotFound(job_id)
    return job_results(session, job, rope)


def job_rope(job: Any, rope: float | None = None) -> float:
    """The request's ROPE, else the job's, else the default (0.5 points)."""
    return rope if rope is not None else float((job.spec or {}).get("rope", DEFAULT_ROPE))


def job_results(session: Session, job: Any, rope: float | None = None) -> dict[str, Any]:
    """Per-variant rows and per-fold rows of a job (a `Job` or a row with its id, status, dataset...)."""
    if is_style_job(job):  # its own rows: losses over seeds (service.style.results)
        from service.style.results import style_results

        return style_results(session, job)
    trials = session.execute(TRIALS_OF_JOB, {"job_id": job.id}).all()
    rope = job_rope(job, rope)
    rows = variant_rows(trials, rope)
    n_pairs = max((r["gain"]["n_pairs"] for r in rows if r["gain"]), default=0)
    return {"job_id": job.id, "status": job.status, "dataset": job.dataset, "backbone": job.backbone,
            "protocol": job.protocol, "protocol_hash": job.protocol_hash, "rope": rope,
            "n_trials": len(trials), "n_folds": len({(t.repeat or 0, t.fold) for t in trials}),
            "metric_note": "top1/top5 in percent; gain = variant minus baseline in points, paired on the same "
                           "repeat, fold and seed",
            "test_note": power_note(n_pairs), "rows": rows, "folds": fold_rows(trials),
            "design": dict(zip(("folds", "repeats", "seeds"), design(trials), strict=True))}


# --- tables -----------------------------------------------------------------------------

def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _millions(value: Any) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}M"


def _gain_cell(gain: dict[str, Any]) -> str:
    """'+1.20 [-0.50, +2.90]': the mean gain in points with its corrected 95% CI."""
    if gain.get("gain_mean") is None:
        return "-"
    low, high = gain.get("corrected_ci95") or (None, None)
    return f"{gain['gain_mean']:+.2f}" + ("" if low is None else f" [{low:+.2f}, {high:+.2f}]")


def _bayes_cell(gain: dict[str, Any]) -> str:
    bayes = gain.get("bayes")
    return "-" if not bayes else f"{bayes['p_better']:.2f} / {bayes['p_equivalent']:.2f} / {bayes['p_worse']:.2f}"


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of the paper-style table (shared by markdown and the CLI); accuracies are
    percent as the trials report them, gains are points."""
    groups = sorted({g for row in results["rows"] for g in (row["group_top1"] or {})})
    header = (["variant", "folds", "params", "MACs", "top-1 (%)", "top-5 (%)", "top-1 95% CI"]
              + [f"{g} top-1" for g in groups]
              + ["gain top-1 [corrected 95% CI]", "corrected p", "P(better / equiv. / worse)", "verdict",
                 "t-test p (secondary)", "Wilcoxon p (secondary)", "images/s"])
    cells = []
    for row in results["rows"]:
        gain = row["gain"] or {}
        low, high = row["top1_ci95"]
        cells.append([
            row["variant"] + (" (incomplete)" if row.get("incomplete") else ""), str(row["n_folds"]),
            _millions(row["params"]), _millions(row["macs"]),
            f"{_fmt(row['top1_mean'])} ± {_fmt(row['top1_std'])}",
            f"{_fmt(row['top5_mean'])} ± {_fmt(row['top5_std'])}",
            "-" if low is None else f"[{_fmt(low)}, {_fmt(high)}]",
            *[_fmt((row["group_top1"] or {}).get(g)) for g in groups],
            _gain_cell(gain), _fmt(gain.get("corrected_t_pvalue"), 4), _bayes_cell(gain), gain.get("verdict") or "-",
            _fmt(gain.get("t_pvalue"), 4), _fmt(gain.get("wilcoxon_pvalue"), 4), _fmt(row["images_per_s"], 0),
        ])
    return header, cells


def verdict_sentences(results: dict[str, Any]) -> list[str]:
    """One sentence per compared variant: its verdict and what would settle it."""
    lines = []
    for row in results["rows"]:
        gain = row["gain"]
        if gain is None:
            continue
        if gain["gain_mean"] is None:
            lines.append(f"{row['variant']}: no pairs with the baseline, so no verdict.")
            continue
        n_missing = len(row["missing"])
        missing = f" ({n_missing} pair{'s' if n_missing > 1 else ''} missing: failed trials)" if n_missing else ""
        lines.append(f"{row['variant']} vs baseline, {gain['gain_mean']:+.2f} points over {gain['n_pairs']} pairs"
                     f"{missing}: {gain['verdict_note']}.")
    return lines


def table_note(results: dict[str, Any]) -> str:
    return (f"Mean ± std over folds, in percent; gains in points, tests paired on (repeat, fold, seed); "
            f"ROPE ±{results['rope']:g} points. {results['test_note']}.")


def to_markdown(results: dict[str, Any]) -> str:
    if results.get("task") == STYLE_TRANSFER:
        from service.style.results import to_markdown as style_markdown

        return style_markdown(results)
    header, cells = table_rows(results)
    lines = [f"**{results['dataset']}, {results['backbone']}, protocol {results['protocol']}** "
             f"(job {results['job_id']}, {results['status']})", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    lines += ["", table_note(results), "", *verdict_sentences(results)]
    return "\n".join(lines) + "\n"


CSV_GAIN_FIELDS = ("gain_top1", "gain_ci_low", "gain_ci_high", "corrected_t_statistic", "corrected_t_pvalue",
                   "p_better", "p_equivalent", "p_worse", "rope", "verdict", "verdict_note", "n_pairs",
                   "t_pvalue", "wilcoxon_pvalue", "min_wilcoxon_pvalue")


def _csv_gain(gain: dict[str, Any] | None) -> dict[str, Any]:
    if not gain:
        return {}
    low, high = gain.get("corrected_ci95") or (None, None)
    return {"gain_top1": gain["gain_mean"], "gain_ci_low": low, "gain_ci_high": high,
            **{k: gain.get(k) for k in ("corrected_t_statistic", "corrected_t_pvalue", "verdict", "verdict_note",
                                        "n_pairs", "t_pvalue", "wilcoxon_pvalue", "min_wilcoxon_pvalue")},
            **(gain.get("bayes") or {})}


def to_csv(results: dict[str, Any]) -> str:
    """Variant rows with raw numbers (percent and points, unformatted), one column per field."""
    if results.get("task") == STYLE_TRANSFER:
        from service.style.results import to_csv as style_csv

        return style_csv(results)
    groups = sorted({g for row in results["rows"] for g in (row["group_top1"] or {})})
    fields = ["variant", "n_folds", "n_trials", "n_succeeded", "incomplete", "top1_mean", "top1_std",
              "top1_ci_low", "top1_ci_high", "top5_mean", "top5_std", "params", "macs", "images_per_s",
              *[f"top1_{g}" for g in groups], *CSV_GAIN_FIELDS]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in results["rows"]:
        writer.writerow({**{k: row[k] for k in fields if k in row},
                         "top1_ci_low": row["top1_ci95"][0], "top1_ci_high": row["top1_ci95"][1],
                         **{f"top1_{g}": (row["group_top1"] or {}).get(g) for g in groups},
                         **_csv_gain(row["gain"])})
    return out.getvalue()


# --- summaries and leaderboard ----------------------------------------------------------

def write_summaries(session: Session, job: Job, mlflow_runs: dict[str, str] | None = None) -> None:
    """Replace the job's per-variant summaries with ones computed from its finished trials."""
    trials = list(session.scalars(select(Trial).where(Trial.job_id == job.id)))
    session.query(VariantSummary).filter(VariantSummary.job_id == job.id).delete()
    by_variant: dict[str, list[Trial]] = defaultdict(list)
    for trial in trials:
        if trial.status == "succeeded" and trial.top1 is not None:
            by_variant[trial.variant].append(trial)
    for row in variant_rows(trials):
        done = by_variant.get(row["variant"], [])
        if not done:
            continue
        session.add(VariantSummary(
            job_id=job.id, variant=row["variant"], dataset=job.dataset, backbone=job.backbone,
            protocol=job.protocol, protocol_hash=job.protocol_hash, n_trials=len(done),
            top1_mean=row["top1_mean"], top1_std=row["top1_std"], top5_mean=row["top5_mean"],
            top5_std=row["top5_std"], params=row["params"], macs=row["macs"], images_per_s=row["images_per_s"],
            group_top1=row["group_top1"], mlflow_run_id=(mlflow_runs or {}).get(row["variant"]),
            pairs={summary_key(t): t.top1 for t in done}, test_train_ratio=test_train_ratio(done)))
    from service.leaderboard import refresh_group  # it builds on this module's aggregation

    refresh_group(session, job.dataset, job.backbone, job.protocol_hash)


def summary_key(trial: Trial) -> str:
    """'k5/r0/f1/s0': a trial's split and seed, comparable across jobs of one leaderboard group."""
    n_folds = (trial.spec or {}).get("n_folds") or "official"
    fold = "-" if trial.fold is None else trial.fold
    return f"k{n_folds}/r{trial.repeat or 0}/f{fold}/s{trial.seed}"


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


def _pairs_query(filters: tuple[str, ...]) -> Select:
    """Each summary's per-key top-1 (what the tie groups pair on), filtered like the aggregate."""
    s = VariantSummary
    query = select(s.dataset, s.backbone, s.protocol_hash, s.variant, s.pairs, s.test_train_ratio) \
        .where(s.pairs.is_not(None)).order_by(s.id)
    for name in filters:
        query = query.where(getattr(s, name) == bindparam(name))
    return query


def _pooled_pairs(session: Session, query: Select, values: dict[str, str]) -> dict[tuple, dict[str, Any]]:
    """Per (dataset, backbone, protocol hash, variant): the pairs of all its jobs (a later job's value for a
    key replaces an earlier one: equal keys are the same split and seed) and the mean n_test/n_train."""
    pooled: dict[tuple, dict[str, Any]] = {}
    for ds, bb, phash, variant, pairs, ratio in session.execute(query, values):
        entry = pooled.setdefault((ds, bb, phash, variant), {"pairs": {}, "ratios": []})
        entry["pairs"].update(pairs)
        if ratio is not None:
            entry["ratios"].append(ratio)
    return pooled


def _add_ranks(board: dict[str, Any], pooled: dict[tuple, dict[str, Any]]) -> None:
    """Each row of a board gains its rank and tie group (service.ranking)."""
    inputs = []
    for row in board["rows"]:
        entry = pooled.get((board["dataset"], board["backbone"], board["protocol_hash"], row["variant"]),
                           {"pairs": {}, "ratios": []})
        ratio = sum(entry["ratios"]) / len(entry["ratios"]) if entry["ratios"] else None
        inputs.append({"variant": row["variant"], "top1_mean": row["top1_mean"], "pairs": entry["pairs"],
                       "test_train_ratio": ratio})
    ranks = rank_variants(inputs)
    for row in board["rows"]:
        row |= ranks[row["variant"]]


# One prebuilt statement per combination of filters (8 in all): see TRIALS_OF_JOB.
_LEADERBOARD_QUERIES: dict[tuple[str, ...], Select] = {}
_PAIRS_QUERIES: dict[tuple[str, ...], Select] = {}


def leaderboard(session: Session, dataset: str | None = None, backbone: str | None = None,
                protocol: str | None = None) -> list[dict[str, Any]]:
    """The leaderboard as GET /v1/leaderboard answers it: read from its table (service.leaderboard)."""
    from service.leaderboard import read_leaderboard

    return read_leaderboard(session, dataset, backbone, protocol)


def aggregate_leaderboard(session: Session, dataset: str | None = None, backbone: str | None = None,
                          protocol: str | None = None, protocol_hash: str | None = None) -> list[dict[str, Any]]:
    """Per (dataset, backbone, protocol hash): every variant pooled over all finished jobs, best top-1 first,
    with its rank and tie group (the corrected test against the group's best, on shared pairs).

    Computed from scratch from the summaries (the dispatcher writes them as a job ends); its cost grows
    with history, so requests read the table service.leaderboard keeps from this instead.
    """
    values = {name: value for name, value in (("dataset", dataset), ("backbone", backbone),
                                              ("protocol", protocol), ("protocol_hash", protocol_hash)) if value}
    filters = tuple(values)
    if filters not in _LEADERBOARD_QUERIES:
        _LEADERBOARD_QUERIES[filters] = _leaderboard_query(filters)
        _PAIRS_QUERIES[filters] = _pairs_query(filters)
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
        board["rows"].sort(key=lambda r: (-(r["top1_mean"] or float("-inf")), r["variant"]))
        board["n_jobs"] = max(r["n_jobs"] for r in board["rows"])
    if result:
        pooled = _pooled_pairs(session, _PAIRS_QUERIES[filters], values)
        for board in result:
            _add_ranks(board, pooled)
    result.sort(key=board_order)
    return result


def board_order(board: dict[str, Any]) -> tuple:
    """Boards by dataset and backbone, the most-run protocol first (the hash breaks ties)."""
    return board["dataset"], board["backbone"], -board["n_jobs"], board["protocol_hash"]
