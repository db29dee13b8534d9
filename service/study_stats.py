"""Comparing variants over several datasets (Demšar, JMLR 2006): average ranks, the Friedman test,
Nemenyi's critical difference and Holm-corrected Wilcoxon tests as post-hoc tests, and the
critical difference diagram (scikit-posthocs draws it).

Input: a datasets x variants matrix of mean top-1. Each dataset ranks the variants (1 = best,
ties share the average rank).
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
MIN_DATASETS_FOR_POSTHOC = 3


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """Nemenyi's q_alpha for k variants: the studentized range quantile (infinite dof) over sqrt 2."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n_datasets: int, alpha: float = ALPHA) -> float:
    """Two average ranks further apart than this differ (Nemenyi): q_alpha * sqrt(k(k+1) / 6N)."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


def average_ranks(matrix: np.ndarray) -> np.ndarray:
    """Mean over datasets (rows) of each variant's rank on that dataset, rank 1 = highest top-1."""
    return np.mean([stats.rankdata(-row) for row in matrix], axis=0)


def groups_from_pvalues(variants: Sequence[str], ranks: Sequence[float], pvalues: np.ndarray,
                        alpha: float = ALPHA) -> list[list[str]]:
    """Maximal runs of variants, in average-rank order, no two of which differ significantly."""
    order = list(np.argsort(ranks, kind="stable"))
    runs: list[tuple[int, int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and all(pvalues[order[i], order[end + 1]] >= alpha for i in range(start, end + 1)):
            end += 1
        if not runs or end > runs[-1][1]:
            runs.append((start, end))
    return [[variants[order[i]] for i in range(start, end + 1)] for start, end in runs]


def _holm_wilcoxon(matrix: np.ndarray) -> np.ndarray:
    """Pairwise Wilcoxon signed-rank p-values over datasets, Holm-corrected (scikit-posthocs)."""
    import scikit_posthocs

    k = matrix.shape[1]
    if all(np.allclose(matrix[:, i], matrix[:, j]) for i in range(k) for j in range(i + 1, k)):
        return np.ones((k, k))  # no differences at all: scipy's wilcoxon is undefined on all-zero pairs
    frame = scikit_posthocs.posthoc_wilcoxon([list(matrix[:, j]) for j in range(k)], zero_method="zsplit",
                                             p_adjust="holm")
    return frame.to_numpy()


def _pvalue_table(variants: Sequence[str], pvalues: np.ndarray) -> dict[str, dict[str, float | None]]:
    return {a: {b: None if i == j or math.isnan(pvalues[i, j]) else float(pvalues[i, j])
                for j, b in enumerate(variants)} for i, a in enumerate(variants)}


def compare_over_datasets(variants: Sequence[str], matrix: np.ndarray) -> dict[str, Any]:
    """Average ranks, Friedman, Nemenyi (CD and p-values), Holm-corrected Wilcoxon and groups."""
    import scikit_posthocs

    n, k = matrix.shape
    ranks = average_ranks(matrix)
    result: dict[str, Any] = {
        "n_datasets": n, "n_variants": k,
        "average_ranks": {v: float(r) for v, r in zip(variants, ranks, strict=True)},
        "friedman": None, "nemenyi": None, "wilcoxon_holm": None, "groups": None,
    }
    if k < 3:
        result["note"] = "the Friedman test needs at least 3 variants"
        return result
    statistic, pvalue = stats.friedmanchisquare(*matrix.T)
    result["friedman"] = {"statistic": float(statistic), "pvalue": float(pvalue)}
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(matrix).to_numpy()
    result["nemenyi"] = {"q_alpha": nemenyi_q(k), "critical_difference": critical_difference(k, n),
                         "pvalues": _pvalue_table(variants, nemenyi)}
    result["wilcoxon_holm"] = {"pvalues": _pvalue_table(variants, _holm_wilcoxon(matrix))}
    result["groups"] = groups_from_pvalues(variants, ranks, nemenyi)
    if n < MIN_DATASETS_FOR_POSTHOC:
        result["note"] = (f"{n} datasets: with fewer than {MIN_DATASETS_FOR_POSTHOC} no post-hoc test can reach "
                          "significance, so no conclusion across datasets is possible; add datasets")
    elif pvalue >= ALPHA:
        result["note"] = (f"Friedman p = {pvalue:.3g} >= {ALPHA}: the variants' ranks do not differ significantly "
                          "over these datasets; the post-hoc tests are shown for reference")
    else:
        result["note"] = (f"Friedman p = {pvalue:.3g} < {ALPHA}: the ranks differ; variants in one group are not "
                          "significantly different (Nemenyi)")
    return result


def cd_diagram_png(comparison: dict[str, Any], title: str) -> bytes:
    """The critical difference diagram as PNG bytes (matplotlib's Agg canvas, no global pyplot state)."""
    import pandas as pd
    import scikit_posthocs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ranks = pd.Series(comparison["average_ranks"])
    variants = list(ranks.index)
    table = comparison["nemenyi"]["pvalues"]
    sig = pd.DataFrame([[1.0 if a == b else table[a][b] for b in variants] for a in variants],
                       index=variants, columns=variants)
    figure = Figure(figsize=(7, 2.2 + 0.25 * len(variants)), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    scikit_posthocs.critical_difference_diagram(ranks, sig, ax=ax,
                                                cd=comparison["nemenyi"]["critical_difference"])
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
