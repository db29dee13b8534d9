"""Power planner for the corrected resampled t-test: what a design can detect, and what would.

Under the test's own model the mean of J paired differences has variance
sigma^2 * (1/J + n_test/n_train) and the t statistic is non-central t with J-1 dof, so the
power of the two-sided test at alpha = 0.05 is exact, and the minimum detectable effect (power
0.8) is the non-centrality that reaches it times the standard error. More repeats shrink only the
1/J term: the variance never falls below sigma^2 * n_test/n_train, and an effect under that
floor's detectable size is out of reach of any number of repeats.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
MAX_REPEATS_SEARCHED = 1000


def _power(ncp: float, df: float | None) -> float:
    """Power of the two-sided test at non-centrality ncp (df None: the normal limit)."""
    if df is None:
        z = stats.norm.ppf(1 - ALPHA / 2)
        return float(stats.norm.sf(z - ncp) + stats.norm.cdf(-z - ncp))
    t = stats.t.ppf(1 - ALPHA / 2, df)
    wrong_side = float(stats.nct.cdf(-t, df, ncp))  # below 1e-14 SciPy may answer NaN for it
    return float(stats.nct.sf(t, df, ncp)) + (0.0 if math.isnan(wrong_side) else wrong_side)


@lru_cache(maxsize=4096)
def _ncp_for_power(df: int | None) -> float:
    """The non-centrality at which the test has power 0.8 (cached: it depends on the dof alone).

    The bracket grows from 4 by doubling: SciPy's non-central t turns NaN far past power 1."""
    high = 4.0
    while _power(high, df) < POWER:
        high *= 2
    return float(optimize.brentq(lambda ncp: _power(ncp, df) - POWER, 0.0, high, xtol=1e-10))


def detectable_effect(sigma: float, n_pairs: int, test_train_ratio: float) -> float:
    """Minimum detectable effect (points) with J = n_pairs pairs, two-sided alpha 0.05, power 0.8."""
    if n_pairs < 2:
        return math.inf
    return _ncp_for_power(n_pairs - 1) * sigma * math.sqrt(1.0 / n_pairs + test_train_ratio)


def floor_effect(sigma: float, test_train_ratio: float) -> float:
    """The detectable effect with infinitely many repeats: the sigma^2 * n_test/n_train floor."""
    return _ncp_for_power(None) * sigma * math.sqrt(test_train_ratio)


def repeats_needed(sigma: float, pairs_per_repeat: int, test_train_ratio: float, effect: float) -> int | None:
    """Fewest repeats whose design detects `effect`; None when none up to 1000 does."""
    def detects(repeats: int) -> bool:
        return detectable_effect(sigma, repeats * pairs_per_repeat, test_train_ratio) <= effect

    if effect <= floor_effect(sigma, test_train_ratio) or not detects(MAX_REPEATS_SEARCHED):
        return None
    low, high = 1, MAX_REPEATS_SEARCHED  # detects(high) holds; find the first repeat count that does
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if detects(middle) else (middle + 1, high)
    return low


def plan(sigma: float | None, test_train_ratio: float | None, folds: int, repeats: int, seeds: int,
         effect: float) -> dict[str, Any]:
    """What this design detects and how many repeats would detect `effect`, with a sentence saying so."""
    design = {"folds": folds, "repeats": repeats, "seeds": seeds, "n_pairs": folds * repeats * seeds,
              "sigma": sigma, "test_train_ratio": test_train_ratio, "effect": effect,
              "alpha": ALPHA, "power": POWER}
    if not sigma or test_train_ratio is None or design["n_pairs"] < 2:
        return design | {"detectable_effect": None, "floor_effect": None, "repeats_needed": None,
                         "note": "no spread of paired differences measured yet (needs 2 pairs that differ, "
                                 "from trials that report num_train and num_eval): nothing to plan from"}
    mde = detectable_effect(sigma, design["n_pairs"], test_train_ratio)
    floor = floor_effect(sigma, test_train_ratio)
    needed = repeats_needed(sigma, folds * seeds, test_train_ratio, effect)
    return design | {"detectable_effect": mde, "floor_effect": floor, "repeats_needed": needed,
                     "note": plan_note(folds, repeats, mde, floor, effect, needed)}


def plan_note(folds: int, repeats: int, mde: float, floor: float, effect: float, needed: int | None) -> str:
    design = f"{folds} folds" + (f" x {repeats} repeats" if repeats > 1 else "")
    said = f"{design} detect ±{mde:.1f} points"
    if needed is not None:
        return f"{said}; {needed} repeats would detect {effect:.1f}"
    if effect <= floor:
        return (f"{said}; no number of repeats detects {effect:.1f}: the folds' shared training data sets a floor "
                f"of ±{floor:.1f} points; more data per fold (a lower spread) would lower it")
    return f"{said}; more than {MAX_REPEATS_SEARCHED} repeats would be needed to detect {effect:.1f}"


def job_plan(results: dict[str, Any], effect: float) -> dict[str, Any]:
    """The plan of every compared variant of a job's results (`service.results.job_results`)."""
    if results.get("task") == "style_transfer":
        return {"job_id": results["job_id"], "dataset": results["dataset"], "effect": effect, "variants": [],
                "note": "the power planner is for classification jobs (folds and repeats); a style_transfer job's "
                        "design is its seeds"}
    folds, repeats, seeds = (results["design"][k] for k in ("folds", "repeats", "seeds"))
    variants = [{"variant": row["variant"], "gain_mean": row["gain"]["gain_mean"]}
                | plan(row["gain"]["gain_std"], row["gain"]["test_train_ratio"], folds, repeats, seeds, effect)
                for row in results["rows"] if row["gain"]]
    return {"job_id": results["job_id"], "dataset": results["dataset"], "effect": effect, "variants": variants}
