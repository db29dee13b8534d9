"""The primary tests of a variant against the baseline on cross-validation folds.

Folds share most of their training data, so their differences are correlated and the plain paired
t-test overstates the evidence. Both tests here use Nadeau & Bengio's (2003) correction: the
variance of the mean of J paired differences is sigma^2 * (1/J + n_test/n_train), with
n_test/n_train measured from the trials.

- the corrected resampled t-test (frequentist, the primary p-value and CI);
- the Bayesian correlated t-test (Corani & Benavoli 2015) with a region of practical equivalence,
  through baycomp's Student-t posterior (the one `baycomp.two_on_single` builds);
- a verdict from its probabilities.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import special

from service.stats import _mean_std, _t_critical

DECISIVE = 0.95  # a verdict needs one of P(better), P(equivalent), P(worse) at least this high
VERDICTS = ("better", "equivalent", "worse", "undecided")


def corrected_variance(std: float, n_pairs: int, test_train_ratio: float) -> float:
    """Nadeau-Bengio variance of the mean difference: sigma^2 * (1/J + n_test/n_train)."""
    return std * std * (1.0 / n_pairs + test_train_ratio)


def _spread(diff: Sequence[float]) -> tuple[float, float] | None:
    """Mean and sample std of the differences, or None when there are too few or no spread."""
    if len(diff) < 2:
        return None
    mean, std = _mean_std(diff)
    if std is None or std <= 1e-12 * max(1.0, max(abs(d) for d in diff)):
        return None
    return mean, std


def corrected_t_test(diff: Sequence[float], test_train_ratio: float | None,
                     confidence: float = 0.95) -> dict[str, object]:
    """Corrected resampled t statistic, two-sided p (Student t, J-1 dof) and CI of the mean gain."""
    empty = {"corrected_t_statistic": None, "corrected_t_pvalue": None, "corrected_ci95": [None, None]}
    spread = _spread(diff)
    if spread is None or test_train_ratio is None:
        return empty
    mean, std = spread
    n = len(diff)
    se = math.sqrt(corrected_variance(std, n, test_train_ratio))
    t = mean / se
    half = _t_critical(confidence, n - 1) * se
    return {"corrected_t_statistic": t, "corrected_t_pvalue": float(2 * special.stdtr(n - 1, -abs(t))),
            "corrected_ci95": [mean - half, mean + half]}


def bayes_correlated(diff: Sequence[float], test_train_ratio: float | None, rope: float) -> dict[str, float] | None:
    """P(worse), P(equivalent), P(better) of the mean gain under the correlated t posterior.

    The posterior is Student t with J-1 dof, centred on the mean difference, with the corrected
    variance; baycomp's Posterior integrates it over (-inf, -rope), [-rope, rope], (rope, inf).
    """
    from baycomp.single import Posterior

    if len(diff) < 2 or test_train_ratio is None:
        return None
    mean, std = _mean_std(diff)
    probs = Posterior(mean, corrected_variance(std, len(diff), test_train_ratio), len(diff) - 1, rope).probs()
    p_worse, p_equivalent, p_better = probs if len(probs) == 3 else (probs[0], 0.0, probs[1])
    return {"p_better": float(p_better), "p_equivalent": float(p_equivalent), "p_worse": float(p_worse),
            "rope": rope}


def verdict(bayes: dict[str, float] | None) -> str:
    """better / equivalent / worse when that probability reaches 0.95, else undecided."""
    if bayes is None:
        return "undecided"
    for name in ("better", "equivalent", "worse"):
        if bayes[f"p_{name}"] >= DECISIVE:
            return name
    return "undecided"


SECONDARY_NOTE = ("t_pvalue (plain paired t) and wilcoxon_pvalue are secondary: they ignore that folds share "
                  "training data; read corrected_t_pvalue and bayes")


def compare_to_baseline(baseline: Sequence[float], variant: Sequence[float], test_train_ratio: float | None,
                        rope: float, design: tuple[int, int, int]) -> dict[str, object]:
    """The `gain` of a results row: the paired tests (secondary), the corrected and Bayesian tests, the
    verdict and, from the power planner at this design (folds, repeats, seeds), what would settle it."""
    from service import power
    from service.stats import paired_comparison

    result = paired_comparison(baseline, variant)
    diff = [float(v) - float(b) for b, v in zip(baseline, variant, strict=True)]
    result |= corrected_t_test(diff, test_train_ratio)
    bayes = bayes_correlated(diff, test_train_ratio, rope)
    result |= {"test_train_ratio": test_train_ratio, "bayes": bayes, "verdict": verdict(bayes),
               "secondary_note": SECONDARY_NOTE}
    target = max(abs(result["gain_mean"] or 0.0), rope)
    planned = power.plan(result["gain_std"], test_train_ratio, *design, effect=target)
    result["detectable_effect"] = planned["detectable_effect"]
    result["verdict_note"] = verdict_note(result["verdict"], bayes, planned)
    return result


def verdict_note(name: str, bayes: dict[str, float] | None, planned: dict[str, object]) -> str:
    """Why the verdict is what it is; for an undecided one, the design that would settle it."""
    if name == "undecided":
        return f"undecided: {planned['note']}"
    return f"{name}: P({name}) = {bayes[f'p_{name}']:.3f} ≥ {DECISIVE} (ROPE ±{bayes['rope']:g} points)"
