"""An analysis's per-trial parts summed up per variant, with paired tests and the paper-style plots.

Pruning (Fig. 6): top-1 mean and std per variant x stage x ratio, the area under each curve,
learned order against the seeded random order on the same trials, and variants against each
other on the same folds. Channel weights (Figs. 7, 8, 10): the sums of squared correlations
per trial and per variant, the distinct top-activated images, and the same paired tests.
Plots are drawn on bare matplotlib Figures (no pyplot state).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from scipy.integrate import trapezoid

from service.stats import describe, paired_comparison


@dataclass
class Part:
    """One trial's finished part of an analysis."""

    trial_id: int
    variant: str
    fold: int | None
    seed: int
    result: dict[str, Any]

    @property
    def pair_key(self) -> tuple[int | None, int]:
        return self.fold, self.seed


def auc(ratios: list[float], top1: list[float]) -> float:
    """Area under the top-1 curve over the ratios (trapezoid rule); over 0..1 it is the curve's mean top-1."""
    return float(trapezoid(top1, ratios))


def _by_variant(parts: list[Part]) -> dict[str, list[Part]]:
    grouped: dict[str, list[Part]] = defaultdict(list)
    for part in sorted(parts, key=lambda p: (p.variant, p.seed, -1 if p.fold is None else p.fold)):
        grouped[part.variant].append(part)
    return dict(grouped)


def _pairwise(grouped: dict[str, list[Part]], value) -> list[dict[str, Any]]:
    """Every pair of variants compared on the folds both have: ``b`` minus ``a``."""
    comparisons = []
    for a, b in combinations(grouped, 2):
        left = {p.pair_key: value(p) for p in grouped[a]}
        right = {p.pair_key: value(p) for p in grouped[b]}
        shared = sorted(set(left) & set(right), key=str)
        comparisons.append({"a": a, "b": b, **paired_comparison([left[k] for k in shared],
                                                                 [right[k] for k in shared])})
    return comparisons


def summarize_pruning(parts: list[Part]) -> dict[str, Any]:
    ratios = parts[0].result["ratios"]
    stages = list(parts[0].result["stages"])
    grouped = _by_variant(parts)
    curves: dict[str, Any] = {}
    aucs: dict[str, Any] = {}
    for variant, members in grouped.items():
        curves[variant], aucs[variant] = {}, {}
        for stage in stages:
            per_order = {order: np.array([p.result["stages"][stage][order] for p in members], dtype=float)
                         for order in ("gate", "random")}
            curves[variant][stage] = {order: {"mean": values.mean(axis=0).tolist(),
                                              "std": (values.std(axis=0, ddof=1) if len(values) > 1
                                                      else np.full(len(ratios), np.nan)).tolist()}
                                      for order, values in per_order.items()}
            gate = [auc(ratios, row) for row in per_order["gate"]]
            random = [auc(ratios, row) for row in per_order["random"]]
            aucs[variant][stage] = {"gate": describe(gate), "random": describe(random),
                                    "gate_vs_random": paired_comparison(random, gate)}
    comparisons = {stage: _pairwise(grouped, lambda p, s=stage: auc(ratios, p.result["stages"][s]["gate"]))
                   for stage in stages}
    trials = [{"trial_id": p.trial_id, "variant": p.variant, "fold": p.fold, "seed": p.seed,
               "top1": p.result["top1"], "device": p.result.get("device"),
               "auc": {s: {o: auc(ratios, p.result["stages"][s][o]) for o in ("gate", "random")} for s in stages}}
              for p in parts]
    return {"ratios": ratios, "stages": stages, "curves": _finite(curves), "auc": aucs,
            "auc_comparisons": comparisons, "trials": trials}


def summarize_channel_weights(parts: list[Part]) -> dict[str, Any]:
    grouped = _by_variant(parts)
    sums, per_block, distinct = {}, {}, {}
    for variant, members in grouped.items():
        sums[variant] = {key: describe([p.result["total"][key] for p in members])
                         for key in ("with_diagonal", "without_diagonal")}
        blocks = members[0].result["blocks"]
        per_block[variant] = {name: float(np.mean([p.result["blocks"][name]["with_diagonal"] for p in members]))
                              for name in blocks}
        distinct[variant] = describe([p.result["distinct_top_images"] for p in members])
    comparisons = {key: _pairwise(grouped, lambda p, k=key: p.result["total"][k])
                   for key in ("with_diagonal", "without_diagonal")}
    comparisons["distinct_top_images"] = _pairwise(grouped, lambda p: p.result["distinct_top_images"])
    trials = [{"trial_id": p.trial_id, "variant": p.variant, "fold": p.fold, "seed": p.seed,
               "top1": p.result["top1"], "total": p.result["total"],
               "distinct_top_images": p.result["distinct_top_images"],
               "top_channels": len(p.result["top_images"])} for p in parts]
    return {"block": parts[0].result["block"], "sum_sq": sums, "sum_sq_per_block": per_block,
            "distinct_top_images": distinct, "comparisons": comparisons, "trials": trials}


def _finite(value):
    """NaN (a std of one trial) becomes None: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


SUMMARIES = {"pruning": summarize_pruning, "channel_weights": summarize_channel_weights}


def representatives(parts: list[Part]) -> dict[str, Part]:
    """One trial per variant for the pictures of a single network (the lowest seed and fold)."""
    return {variant: members[0] for variant, members in _by_variant(parts).items()}


# --- plots ------------------------------------------------------------------------------------

def pruning_figure(summary: dict[str, Any]):
    """Fig. 6: one panel per stage, top-1 against prune ratio, a line per variant; random order dashed."""
    from matplotlib.figure import Figure

    stages, ratios = summary["stages"], summary["ratios"]
    figure = Figure(figsize=(4.2 * len(stages), 3.8))
    axes = np.atleast_1d(figure.subplots(1, len(stages), sharey=True))
    colors = dict(zip(summary["curves"], ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                                          "tab:brown", "tab:pink", "tab:gray"), strict=False))
    for axis, stage in zip(axes, stages, strict=False):
        for variant, by_stage in summary["curves"].items():
            for order, style in (("gate", "-"), ("random", "--")):
                mean = np.array(by_stage[stage][order]["mean"], dtype=float)
                std = np.array([np.nan if v is None else v for v in by_stage[stage][order]["std"]], dtype=float)
                label = variant if order == "gate" else f"{variant} (random order)"
                axis.plot(ratios, mean, style, color=colors.get(variant), marker="o" if order == "gate" else None,
                          markersize=3, label=label)
                if order == "gate" and np.isfinite(std).any():
                    axis.fill_between(ratios, mean - std, mean + std, color=colors.get(variant), alpha=0.12)
        axis.set(title=f"conv{stage}", xlabel="prune ratio", xlim=(min(ratios), max(ratios)))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("held-out top-1 (%)")
    axes[-1].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return figure


def correlation_figure(parts: dict[str, Part], block: str):
    """Fig. 8: the chosen block's channel-weight correlation matrix, one heatmap per variant."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(parts) + 1.0, 4.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(parts)))
    colors = colormaps["RdBu_r"].with_extremes(bad="0.75")  # grey: a channel whose weight never changed
    image = None
    for axis, (variant, part) in zip(axes, parts.items(), strict=False):
        matrix = np.array([[np.nan if v is None else v for v in row] for row in part.result["correlation"]],
                          dtype=float)
        image = axis.imshow(matrix, cmap=colors, vmin=-1, vmax=1, interpolation="nearest")
        axis.set(title=f"{variant}: {block} ({len(matrix)}x{len(matrix)}), fold {part.fold}", xlabel="channel")
    axes[0].set_ylabel("channel")
    figure.colorbar(image, ax=list(axes), shrink=0.85, label="correlation of channel weights over images")
    return figure


def top_images_figure(parts: dict[str, Part], thumbnails: dict[str, np.ndarray], block: str):
    """Fig. 7: for each of the block's first channels, the held-out image that weighs it most."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.4 * len(parts), 4.9))
    axes = np.atleast_1d(figure.subplots(1, len(parts)))
    for axis, (variant, part) in zip(axes, parts.items(), strict=False):
        images = thumbnails[variant]
        side = int(np.ceil(np.sqrt(len(images))))
        height, width = images.shape[1:3]
        grid = np.ones((side * (height + 1), side * (width + 1), 3), dtype=np.uint8) * 255
        for index, picture in enumerate(images):
            row, col = divmod(index, side)
            grid[row * (height + 1):row * (height + 1) + height, col * (width + 1):col * (width + 1) + width] = picture
        axis.imshow(grid, interpolation="nearest")
        axis.set_title(f"{variant}: {block}, {len(images)} channels\n"
                       f"{part.result['distinct_top_images']} distinct images (fold {part.fold})", fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    return figure


def draw(kind: str, summary: dict[str, Any], parts: list[Part], folder: Path) -> dict[str, str]:
    """Write the analysis's PNGs into ``folder``; plot name -> file path."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "pruning":
        figures = {"pruning": pruning_figure(summary)}
    else:
        chosen = representatives(parts)
        thumbnails = {v: np.load(folder / f"top-{p.trial_id}.npy") for v, p in chosen.items()
                      if (folder / f"top-{p.trial_id}.npy").is_file()}
        figures = {"correlation": correlation_figure(chosen, summary["block"])}
        if len(thumbnails) == len(chosen):
            figures["top_images"] = top_images_figure(chosen, thumbnails, summary["block"])
    written = {}
    for name, figure in figures.items():
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        written[name] = str(path)
    return written
