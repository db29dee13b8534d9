"""Ranks and tie groups of a leaderboard group's variants, from the corrected test against the best.

A pure function of plain numbers (no SQL), so any reader of summaries can rank the same way.
Rank 1 is the best mean top-1. Tie group 1 is the best variant and every variant the corrected
resampled t-test (two-sided, alpha 0.05, paired on shared (folds, repeat, fold, seed) keys) cannot
tell from it; the best of the rest opens group 2, and so on. Two variants with fewer than two
shared pairs, or no spread in their differences, cannot be told apart: they tie.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.corrected import corrected_t_test

ALPHA = 0.05


def _versus(best: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """The corrected test of `other` minus `best` on the keys both have."""
    shared = sorted(set(best["pairs"] or {}) & set(other["pairs"] or {}))
    ratios = [r for r in (best.get("test_train_ratio"), other.get("test_train_ratio")) if r is not None]
    ratio = sum(ratios) / len(ratios) if ratios else None
    diff = [other["pairs"][k] - best["pairs"][k] for k in shared]
    test = corrected_t_test(diff, ratio)
    return {"n_pairs": len(shared), "gain_mean": sum(diff) / len(diff) if diff else None,
            "corrected_t_pvalue": test["corrected_t_pvalue"]}


def _distinct(best: dict[str, Any], other: dict[str, Any]) -> bool:
    p = _versus(best, other)["corrected_t_pvalue"]
    return p is not None and p < ALPHA


def rank_variants(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{variant: {rank, tie_group, vs_best}} for rows of {variant, top1_mean, pairs: {key: top1},
    test_train_ratio}; vs_best is the corrected test against the group's best (None for the best)."""
    order = sorted(rows, key=lambda r: -(r["top1_mean"] if r["top1_mean"] is not None else float("-inf")))
    if not order:
        return {}
    ranked = {row["variant"]: {"rank": i + 1, "tie_group": None,
                               "vs_best": None if i == 0 else _versus(order[0], row)}
              for i, row in enumerate(order)}
    remaining, group = list(order), 0
    while remaining:
        group += 1
        leader = remaining[0]
        tied = [leader] + [row for row in remaining[1:] if not _distinct(leader, row)]
        for row in tied:
            ranked[row["variant"]]["tie_group"] = group
        remaining = [row for row in remaining if ranked[row["variant"]]["tie_group"] is None]
    return ranked
