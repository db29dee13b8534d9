"""The job report's figures (matplotlib, no pyplot state), each returned as a PNG data URI.

Per-fold top-1 per variant; paired differences against the baseline with 95% confidence
intervals; training and validation curves per variant, the mean over folds with a ±1 std band.
"""
from __future__ import annotations

import base64
import io
from collections import defaultdict
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from service.stats import describe

BASELINE = "baseline"


def png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _fold_scores(folds: list[dict[str, Any]]) -> dict[str, dict[tuple, float]]:
    """Variant -> {(fold, seed, repeat): top-1} over succeeded trials."""
    scores: dict[str, dict[tuple, float]] = defaultdict(dict)
    for row in folds:
        if row["status"] == "succeeded" and row["top1"] is not None:
            scores[row["variant"]][(row["fold"], row["seed"], row.get("repeat", 0))] = row["top1"]
    return scores


def fold_accuracies(variants: list[str], folds: list[dict[str, Any]]) -> Figure | None:
    """Box plot of each variant's per-fold top-1 with the folds drawn as points over it."""
    scores = _fold_scores(folds)
    shown = [v for v in variants if scores.get(v)]
    if not shown:
        return None
    figure = Figure(figsize=(1.6 * len(shown) + 2.5, 3.8))
    axis = figure.subplots()
    values = [list(scores[v].values()) for v in shown]
    axis.boxplot(values, tick_labels=shown, widths=0.5, showfliers=False)
    jitter = np.random.default_rng(0)
    for position, points in enumerate(values, start=1):
        axis.scatter(position + jitter.uniform(-0.12, 0.12, len(points)), points, s=22, zorder=3, alpha=0.8)
    axis.set(ylabel="top-1 (%)", title="Held-out top-1 per fold")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def paired_differences(rows: list[dict[str, Any]], folds: list[dict[str, Any]]) -> Figure | None:
    """Per variant: its top-1 minus the baseline's on the same folds (points), their mean and 95% CI
    (Student t over the differences), and the corrected CI when the results carry one."""
    scores = _fold_scores(folds)
    baseline = scores.get(BASELINE)
    compared = [r for r in rows if r["variant"] != BASELINE and baseline and scores.get(r["variant"])]
    if not compared:
        return None
    figure = Figure(figsize=(7.5, 1.0 * len(compared) + 1.8))
    axis = figure.subplots()
    axis.axvline(0.0, color="grey", linewidth=1)
    for position, row in enumerate(compared):
        variant = scores[row["variant"]]
        diffs = [variant[key] - baseline[key] for key in variant if key in baseline]
        summary = describe(diffs)
        axis.scatter(diffs, np.full(len(diffs), position) + 0.15, s=18, color="tab:blue", alpha=0.7,
                     label="per fold" if position == 0 else None)
        if summary["ci_low"] is not None:
            axis.errorbar(summary["mean"], position, xerr=[[summary["mean"] - summary["ci_low"]],
                                                           [summary["ci_high"] - summary["mean"]]],
                          fmt="o", color="black", capsize=4, label="mean, 95% CI" if position == 0 else None)
        else:
            axis.scatter([summary["mean"]], [position], color="black", label="mean" if position == 0 else None)
        corrected = (row.get("gain") or {}).get("corrected_ci95")
        if corrected and None not in corrected:
            axis.errorbar(summary["mean"], position - 0.15, xerr=[[summary["mean"] - corrected[0]],
                                                                  [corrected[1] - summary["mean"]]],
                          fmt="s", color="tab:red", capsize=4,
                          label="corrected 95% CI" if position == 0 else None)
    axis.set_yticks(range(len(compared)), [r["variant"] for r in compared])
    axis.set_ylim(len(compared) - 0.4, -0.6)  # first variant on top, as in the table
    axis.set(xlabel="top-1 difference to the baseline (percentage points)",
             title="Paired differences against the baseline")
    axis.legend(loc="best", fontsize="small")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def _mean_and_std(series: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs 1..n, mean and std over the series that reach each epoch."""
    length = max(len(s) for s in series)
    padded = np.full((len(series), length), np.nan)
    for i, values in enumerate(series):
        padded[i, :len(values)] = values
    present = ~np.isnan(padded)
    counts = present.sum(axis=0)
    mean = np.where(present, padded, 0.0).sum(axis=0) / counts
    squares = np.where(present, (padded - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(squares / np.maximum(counts - 1, 1)) * (counts > 1)
    return np.arange(1, length + 1), mean, std


def training_curves(variants: list[str], histories: dict[str, list[list[dict]]]) -> Figure | None:
    """Top-1 and loss per epoch, train (dashed) and validation (solid), one colour per variant."""
    shown = [v for v in variants if histories.get(v)]
    if not shown:
        return None
    figure = Figure(figsize=(11, 4.2))
    accuracy, loss = figure.subplots(1, 2)
    colours = {v: f"C{i}" for i, v in enumerate(shown)}
    for variant in shown:
        runs = histories[variant]
        for axis, key, style, label in ((accuracy, "train_acc", "--", "train"), (accuracy, "val_top1", "-", "val"),
                                        (loss, "train_loss", "--", "train"), (loss, "val_loss", "-", "val")):
            epochs, mean, std = _mean_and_std([[h[key] for h in run if h.get(key) is not None] for run in runs])
            axis.plot(epochs, mean, style, color=colours[variant], label=f"{variant} {label}")
            axis.fill_between(epochs, mean - std, mean + std, color=colours[variant], alpha=0.15, linewidth=0)
    accuracy.set(xlabel="epoch", ylabel="top-1 (%)", title="Accuracy (mean over folds ± 1 std)")
    loss.set(xlabel="epoch", ylabel="loss", title="Loss (mean over folds ± 1 std)")
    for axis in (accuracy, loss):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    accuracy.legend(fontsize="small", ncol=2)
    figure.tight_layout()
    return figure
