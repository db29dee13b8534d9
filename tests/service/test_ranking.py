"""Leaderboard ranks and tie groups: the corrected test against the group's best, worked out here."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from service.ranking import rank_variants


def _row(variant, values, ratio=0.25):
    return {"variant": variant, "top1_mean": float(np.mean(values)),
            "pairs": {f"k5/r{i // 5}/f{i % 5}/s0": v for i, v in enumerate(values)}, "test_train_ratio": ratio}


def _corrected_p(diff, ratio=0.25):
    diff = np.asarray(diff)
    t = diff.mean() / (diff.std(ddof=1) * math.sqrt(1 / len(diff) + ratio))
    return 2 * stats.t.sf(abs(t), len(diff) - 1)


def test_ties_with_the_best_share_group_one_and_the_rest_start_group_two():
    rng = np.random.default_rng(3)
    best = rng.normal(80, 1, 10)
    close = best - 0.3 + rng.normal(0, 0.5, 10)    # not distinguishable from the best
    far = best - 6.0 + rng.normal(0, 0.5, 10)      # clearly worse
    farther = best - 6.2 + rng.normal(0, 0.5, 10)  # clearly worse than the best, tied with `far`
    assert _corrected_p(close - best) >= 0.05 and _corrected_p(far - best) < 0.05
    assert _corrected_p(farther - far) >= 0.05
    ranked = rank_variants([_row("far", far), _row("best", best), _row("farther", farther), _row("close", close)])
    assert {v: (r["rank"], r["tie_group"]) for v, r in ranked.items()} == {
        "best": (1, 1), "close": (2, 1), "far": (3, 2), "farther": (4, 2)}
    assert ranked["best"]["vs_best"] is None
    assert ranked["far"]["vs_best"]["corrected_t_pvalue"] == pytest.approx(_corrected_p(far - best))
    assert ranked["far"]["vs_best"]["n_pairs"] == 10


def test_variants_without_shared_pairs_cannot_be_told_apart():
    a = _row("a", [80.0, 81.0, 82.0])
    b = {"variant": "b", "top1_mean": 50.0, "pairs": {"k10/r0/f0/s0": 50.0}, "test_train_ratio": None}
    ranked = rank_variants([a, b])
    assert ranked["b"] == {"rank": 2, "tie_group": 1, "vs_best": {"n_pairs": 0, "gain_mean": None,
                                                                 "corrected_t_pvalue": None}}
    assert rank_variants([]) == {}
