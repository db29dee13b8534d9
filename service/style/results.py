"""A style-transfer job's results: final losses per variant over seeds, each paired with BN on the same seed.

Final losses are the training losses of the last curve point (Fig. 5 of the paper plots training curves);
the held-out losses (the trained net in eval mode on content images it never saw) come beside them.
Seeds train on the same images, independently initialised and shuffled, so the paired t-test over seeds is
the primary test here (the fold correction of classification jobs does not apply); Wilcoxon is secondary.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from service.stats import describe, paired_comparison

REFERENCE = "bn"
LOSSES = ("style_loss", "content_loss", "total_loss")
FINALS = tuple(f"{key}_final" for key in LOSSES)
HELD_OUT = ("held_out_style_loss", "held_out_content_loss", "held_out_total_loss")
METRIC_NOTE = ("final losses: training losses (mean over the last curve point's steps), as the example weights "
               "them (content 1e5 x MSE at relu2_2, style 1e10 x Gram MSE over relu1_2..relu4_3); mean ± std over "
               "seeds; lower is better. vs_bn: variant minus bn on the same seed (negative: lower loss than bn), "
               "paired t-test over seeds (primary), Wilcoxon (secondary)")


def _metric(trial: Any, key: str) -> Any:
    return (trial.metrics or {}).get(key)


def _comparison(reference: dict[int, Any], mine: dict[int, Any], key: str) -> dict[str, Any]:
    seeds = sorted(set(reference) & set(mine))
    name = f"{key}_final"
    compared = paired_comparison([_metric(reference[s], name) for s in seeds], [_metric(mine[s], name) for s in seeds])
    diff = describe([_metric(mine[s], name) - _metric(reference[s], name) for s in seeds])
    return {"n_pairs": compared["n_pairs"], "diff_mean": compared["gain_mean"], "diff_std": compared["gain_std"],
            "diff_ci95": [diff["ci_low"], diff["ci_high"]], "t_statistic": compared["t_statistic"],
            "t_pvalue": compared["t_pvalue"], "wilcoxon_pvalue": compared["wilcoxon_pvalue"],
            "min_wilcoxon_pvalue": compared["min_wilcoxon_pvalue"]}


def style_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per variant, in submission order."""
    by_variant: dict[str, list[Any]] = defaultdict(list)
    for trial in sorted(trials, key=lambda t: t.id or 0):
        by_variant[trial.variant].append(trial)
    reference = {t.seed: t for t in by_variant.get(REFERENCE, []) if t.status == "succeeded"}
    all_seeds = sorted({t.seed for t in trials})
    rows = []
    for variant, group in by_variant.items():
        done = {t.seed: t for t in group if t.status == "succeeded"}
        first = done[min(done)] if done else None
        row: dict[str, Any] = {"variant": variant, "n_trials": len(group), "n_succeeded": len(done),
                               "seeds": sorted(done)}
        for name in (*FINALS, *HELD_OUT):
            described = describe([_metric(t, name) for t in done.values()])
            row[f"{name}_mean"], row[f"{name}_std"] = described["mean"], described["std"]
        row |= {"params": _metric(first, "params") if first else None,
                "perceptual_net": _metric(first, "perceptual_net") if first else None,
                "placement": _metric(first, "placement") if first else None,
                "images_per_s": (math.fsum(_metric(t, "images_per_s") for t in done.values()) / len(done)
                                 if done else None)}
        compared = variant != REFERENCE and bool(reference)
        missing = [s for s in all_seeds if s not in done or (compared and s not in reference)]
        row |= {"incomplete": bool(missing), "missing_seeds": missing,
                "vs_bn": {key: _comparison(reference, done, key) for key in LOSSES} if compared else None}
        rows.append(row)
    return rows


def curve_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """Per trial: its variant, seed and curve points (step, style, content and total loss)."""
    return [{"variant": t.variant, "seed": t.seed, "status": t.status, "mlflow_run_id": t.mlflow_run_id,
             "error": t.error, **{name: _metric(t, name) for name in (*FINALS, *HELD_OUT)},
             "curve": [{k: point.get(k) for k in ("step", *LOSSES)} for point in (_metric(t, "history") or [])]}
            for t in sorted(trials, key=lambda t: (t.variant, t.seed))]


def style_results(session: Any, job: Any) -> dict[str, Any]:
    """The results of a style-transfer job (a Job or a row with its id, status, dataset, protocol, spec)."""
    from service.results import TRIALS_OF_JOB

    trials = session.execute(TRIALS_OF_JOB, {"job_id": job.id}).all()
    spec = job.spec or {}
    return {"job_id": job.id, "task": "style_transfer", "status": job.status, "dataset": job.dataset,
            "style_image": spec.get("style_image"), "perceptual_net": spec.get("perceptual_net"),
            "placement": spec.get("placement"), "protocol": job.protocol, "protocol_hash": job.protocol_hash,
            "n_trials": len(trials), "seeds": sorted({t.seed for t in trials}), "metric_note": METRIC_NOTE,
            "rows": style_rows(trials), "trials": curve_rows(trials)}


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pm(row: dict[str, Any], name: str) -> str:
    return f"{_fmt(row[f'{name}_mean'])} ± {_fmt(row[f'{name}_std'], 2)}"


def _vs(row: dict[str, Any], key: str) -> str:
    compared = (row["vs_bn"] or {}).get(key)
    if not compared or compared["diff_mean"] is None:
        return "-"
    return f"{compared['diff_mean']:+.4g} (p {_fmt(compared['t_pvalue'], 3)})"


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "seeds", "style loss", "content loss", "total loss", "style vs bn (t-test p)",
              "content vs bn (t-test p)", "total vs bn (t-test p)", "held-out total loss"]
    cells = [[row["variant"] + (" (incomplete)" if row["incomplete"] else ""), str(len(row["seeds"])),
              _pm(row, "style_loss_final"), _pm(row, "content_loss_final"), _pm(row, "total_loss_final"),
              _vs(row, "style_loss"), _vs(row, "content_loss"), _vs(row, "total_loss"),
              _pm(row, "held_out_total_loss")] for row in results["rows"]]
    return header, cells


def to_markdown(results: dict[str, Any]) -> str:
    header, cells = table_rows(results)
    lines = [f"**style transfer: {results['dataset']} in the style of {results['style_image']}, protocol "
             f"{results['protocol']}, perceptual net {results['perceptual_net']}, placement {results['placement']}** "
             f"(job {results['job_id']}, {results['status']})", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
             *("| " + " | ".join(row) + " |" for row in cells), "", results["metric_note"] + "."]
    return "\n".join(lines) + "\n"


def to_csv(results: dict[str, Any]) -> str:
    fields = ["variant", "n_trials", "n_succeeded", *(f"{k}_final_{s}" for k in LOSSES for s in ("mean", "std")),
              *(f"{k}_{s}" for k in HELD_OUT for s in ("mean", "std")), "params",
              *(f"vs_bn_{k}_{f}" for k in LOSSES for f in ("diff_mean", "t_pvalue", "wilcoxon_pvalue"))]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in results["rows"]:
        flat = dict(row)
        for key, compared in (row["vs_bn"] or {}).items():
            flat |= {f"vs_bn_{key}_{f}": compared[f] for f in ("diff_mean", "t_pvalue", "wilcoxon_pvalue")}
        writer.writerow(flat)
    return out.getvalue()


def mlflow_comparisons(trials: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Per variant, the numbers its MLflow summary run carries beside the means: differences from bn and p."""
    found: dict[str, dict[str, float]] = {}
    for row in style_rows(trials):
        numbers: dict[str, Any] = {}
        for key, compared in (row["vs_bn"] or {}).items():
            numbers[f"diff_{key}"] = compared["diff_mean"]
            if key in ("style_loss", "total_loss"):
                numbers[f"t_pvalue_{key}"] = compared["t_pvalue"]
        found[row["variant"]] = {k: v for k, v in numbers.items() if v is not None}
    return found
