"""Cross-validation statistics: mean, spread, confidence interval and the plain paired tests (SciPy).

The plain paired t-test and Wilcoxon here are kept as secondary tests; the primary, fold-aware
ones are in service.corrected.

With k folds there are only k paired differences, so the tests can say little; every
comparison reports the smallest p-value its test could reach with that many pairs.

The inputs are a handful of fold accuracies and these run on every results request, so the
arithmetic is plain Python floats (NumPy's per-call overhead dwarfs five numbers) and SciPy is
called only where it does real work: t quantiles and the exact Wilcoxon distribution, both cached.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import special, stats


def _mean_std(x: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std (ddof=1, two-pass) of a few floats."""
    mean = math.fsum(x) / len(x)
    if len(x) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in x) / (len(x) - 1))


def describe(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | int | None]:
    """n, mean, sample std (ddof=1) and a Student-t confidence interval of the mean."""
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean, std = _mean_std(x)
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    half = _t_critical(confidence, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


@lru_cache(maxsize=256)
def _t_critical(confidence: float, dof: int) -> float:
    """Two-sided Student-t quantile; cached because every results request asks for the same few."""
    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def min_wilcoxon_p(n_pairs: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can give on n pairs: 2 / 2^n."""
    return min(1.0, 2.0 / 2 ** n_pairs)


def paired_t_test(diff: Sequence[float]) -> tuple[float, float]:
    """Paired t statistic and two-sided p from the differences (what scipy.stats.ttest_rel computes,
    via the t CDF ufunc: ttest_rel's argument handling costs milliseconds per call on a hot path)."""
    n = len(diff)
    mean, std = _mean_std(diff)
    t = mean / (std / math.sqrt(n))
    return t, float(2 * special.stdtr(n - 1, -abs(t)))


@lru_cache(maxsize=8192)
def _wilcoxon_on_signed_ranks(signed_ranks: tuple[float, ...]) -> tuple[float, float]:
    return tuple(float(v) for v in stats.wilcoxon(signed_ranks, zero_method="wilcox", alternative="two-sided"))


def _signed_ranks(diff: Sequence[float]) -> tuple[float, ...]:
    """Sorted signed ranks of |diff|; SciPy's rankdata (average ranks) only when there are ties."""
    magnitudes = sorted(abs(d) for d in diff)
    if len(set(magnitudes)) == len(magnitudes):
        rank = {m: i + 1.0 for i, m in enumerate(magnitudes)}
        ranks = [math.copysign(rank[abs(d)], d) if d else 0.0 for d in diff]
    else:
        ranks = (np.sign(diff) * stats.rankdata(np.abs(diff))).tolist()
    return tuple(sorted(ranks))


def wilcoxon_test(diff: Sequence[float]) -> tuple[float, float]:
    """Wilcoxon signed-rank statistic and two-sided p, as scipy.stats.wilcoxon gives them for `diff`.

    The test sees only the signs and ranks of the differences, so SciPy runs on the sorted signed
    ranks and the answer is cached: fold accuracies repeat patterns, and SciPy's wilcoxon costs
    milliseconds per call on the API's hot path.
    """
    return _wilcoxon_on_signed_ranks(_signed_ranks(diff))


def paired_comparison(baseline: Sequence[float], variant: Sequence[float]) -> dict[str, object]:
    """Gain of `variant` over `baseline` on the same folds, a paired t-test and a Wilcoxon signed-rank test."""
    diff = [float(v) - float(b) for b, v in zip(baseline, variant, strict=True)]
    n = len(diff)
    gain_mean, gain_std = _mean_std(diff) if n else (None, None)
    result: dict[str, object] = {
        "n_pairs": n,
        "gain_mean": gain_mean,
        "gain_std": gain_std,
        "t_statistic": None, "t_pvalue": None,
        "wilcoxon_statistic": None, "wilcoxon_pvalue": None,
        "min_wilcoxon_pvalue": min_wilcoxon_p(n) if n else None,
    }
    # Identical differences (up to float rounding) have no spread: the t-test is undefined.
    if n >= 2 and max(diff) - min(diff) > 1e-9 * max(1.0, max(abs(d) for d in diff)):
        result["t_statistic"], result["t_pvalue"] = paired_t_test(diff)
    if n >= 1 and any(diff):
        result["wilcoxon_statistic"], result["wilcoxon_pvalue"] = wilcoxon_test(diff)
    result["note"] = power_note(n)
    return result


def power_note(n_pairs: int) -> str:
    """What a paired test on this many folds can and cannot show."""
    if n_pairs < 2:
        return "fewer than 2 paired folds: no test is possible"
    floor = min_wilcoxon_p(n_pairs)
    note = (f"{n_pairs} pairs: the (secondary) exact two-sided Wilcoxon test can never go below "
            f"p = {floor:.4g}")
    if floor > 0.05:
        note += ", so it cannot reach p < 0.05 however large the gain (more pairs, from repeats, are the way out)"
    note += ("; folds share training data, so the secondary plain t and Wilcoxon tests overstate the evidence: "
             "the corrected t-test and the Bayesian test are the primary ones")
    return note
