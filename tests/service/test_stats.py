"""Statistics of cross-validation folds, checked against independent computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from service.stats import describe, min_wilcoxon_p, paired_comparison, power_note


def test_describe_gives_sample_std_and_t_interval():
    values = [0.70, 0.72, 0.69, 0.75, 0.71]
    result = describe(values)
    assert result["n"] == 5
    assert result["mean"] == pytest.approx(np.mean(values))
    assert result["std"] == pytest.approx(np.std(values, ddof=1))
    half = 2.7764451051977987 * np.std(values, ddof=1) / math.sqrt(5)  # t(0.975, 4)
    assert result["ci_low"] == pytest.approx(np.mean(values) - half)
    assert result["ci_high"] == pytest.approx(np.mean(values) + half)


def test_describe_of_one_value_has_no_spread():
    assert describe([0.5]) == {"n": 1, "mean": 0.5, "std": None, "ci_low": None, "ci_high": None}
    assert describe([])["mean"] is None


def test_exact_wilcoxon_on_five_pairs_cannot_go_below_0_0625():
    baseline = [0.60, 0.61, 0.62, 0.63, 0.64]
    better = [b + gain for b, gain in zip(baseline, [0.05, 0.06, 0.07, 0.08, 0.09], strict=True)]
    result = paired_comparison(baseline, better)
    assert result["wilcoxon_pvalue"] == pytest.approx(0.0625)
    assert result["min_wilcoxon_pvalue"] == pytest.approx(0.0625)
    assert result["gain_mean"] == pytest.approx(0.07)
    expected_t = scipy_stats.ttest_rel(better, baseline)
    assert result["t_pvalue"] == pytest.approx(expected_t.pvalue)
    assert result["t_pvalue"] < 0.05  # the t-test can, the Wilcoxon cannot
    assert "0.0625" in result["note"] and "cannot reach p < 0.05" in result["note"]


def test_min_wilcoxon_p_halves_with_each_pair():
    assert [min_wilcoxon_p(n) for n in (1, 2, 5, 6, 10)] == [1.0, 0.5, 0.0625, 0.03125, 2 / 1024]


def test_identical_differences_have_no_t_test_but_a_wilcoxon():
    result = paired_comparison([0.5, 0.6, 0.7], [0.6, 0.7, 0.8])
    assert result["t_pvalue"] is None
    assert result["wilcoxon_pvalue"] == pytest.approx(0.25)


def test_no_difference_gives_no_test():
    result = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert result["t_pvalue"] is None and result["wilcoxon_pvalue"] is None
    assert result["gain_mean"] == 0


def test_power_note_with_too_few_pairs():
    assert "no test" in power_note(1)
    assert "0.03125" in power_note(6) and "cannot reach" not in power_note(6)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_tests_agree_with_scipy_on_random_folds(n):
    from service.stats import paired_comparison

    rng = np.random.default_rng(n)
    for _ in range(8):
        baseline = rng.normal(0.6, 0.02, n)
        variant = baseline + rng.normal(0.01, 0.02, n)
        if rng.random() < 0.3:  # ties in |difference| take SciPy's non-exact path
            variant[: n // 2 + 1] = baseline[: n // 2 + 1] + 0.01
        result = paired_comparison(baseline, variant)
        expected_w = scipy_stats.wilcoxon(variant, baseline)
        assert result["wilcoxon_pvalue"] == pytest.approx(expected_w.pvalue)
        assert result["wilcoxon_statistic"] == pytest.approx(expected_w.statistic)
        if result["t_pvalue"] is not None:
            expected_t = scipy_stats.ttest_rel(variant, baseline)
            assert result["t_pvalue"] == pytest.approx(expected_t.pvalue)
            assert result["t_statistic"] == pytest.approx(expected_t.statistic)


@pytest.mark.parametrize("diff", [[0.0, 0.01, -0.02, 0.03], [0.0, 0.0, 0.01, 0.02, -0.03],
                                  [0.01, -0.01, 0.02, 0.02, 0.05], [0.02, 0.02, 0.02]])
def test_wilcoxon_with_zero_and_tied_differences_matches_scipy(diff):
    from service.stats import wilcoxon_test

    expected = scipy_stats.wilcoxon(diff, zero_method="wilcox")
    assert wilcoxon_test(diff) == pytest.approx((expected.statistic, expected.pvalue))
