"""Comparisons over datasets against Demšar (2006), SciPy and formulas worked out here."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from service.study_stats import (average_ranks, cd_diagram_png, compare_over_datasets, critical_difference,
                                 groups_from_pvalues, nemenyi_q)

VARIANTS = ["baseline", "se", "ge", "srm"]
# 6 datasets x 4 variants of mean top-1 (one tie on the last dataset)
MATRIX = np.array([[70.0, 72.0, 71.0, 74.0],
                   [60.0, 61.5, 63.0, 62.0],
                   [80.0, 81.0, 80.5, 83.0],
                   [55.0, 58.0, 54.0, 59.0],
                   [90.0, 90.5, 91.0, 92.0],
                   [40.0, 42.0, 42.0, 41.0]])


def test_nemenyi_q_matches_demsars_table():
    """Demšar (2006), Table 5(a): q_0.05 for k = 2..6 (q_0.05 = 2.569 for k = 4)."""
    for k, q in [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850)]:
        assert nemenyi_q(k) == pytest.approx(q, abs=1e-3)  # the table truncates to 3 decimals
    assert critical_difference(4, 6) == pytest.approx(2.569 * math.sqrt(4 * 5 / 36), abs=1e-3)


def test_average_ranks_by_hand():
    # rank 1 = best; the tie on the last row shares (1 + 2) / 2 = 1.5
    expected = np.mean([[4, 2, 3, 1], [4, 3, 1, 2], [4, 2, 3, 1], [3, 2, 4, 1], [4, 3, 2, 1],
                        [4, 1.5, 1.5, 3]], axis=0)
    assert average_ranks(MATRIX) == pytest.approx(expected)


def test_friedman_matches_scipy_and_the_formula():
    result = compare_over_datasets(VARIANTS, MATRIX)
    n, k = MATRIX.shape
    scipy_statistic, scipy_p = stats.friedmanchisquare(*MATRIX.T)
    assert result["friedman"] == pytest.approx({"statistic": scipy_statistic, "pvalue": scipy_p})
    # Demšar's chi^2_F from rank sums 23, 13.5, 14.5, 9 (no tie correction):
    # 12 * 6 / 20 * ((23^2 + 13.5^2 + 14.5^2 + 9^2) / 36 - 25) = 3.6 * (1002.5 / 36 - 25) = 10.25;
    # SciPy corrects for the one tie, which can only raise it
    ranks = average_ranks(MATRIX)
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(ranks ** 2) - k * (k + 1) ** 2 / 4)
    assert chi2 == pytest.approx(10.25) and scipy_statistic >= chi2
    assert result["nemenyi"]["critical_difference"] == pytest.approx(2.569 * math.sqrt(20 / 36), abs=1e-3)


def test_holm_corrected_wilcoxon_by_hand():
    result = compare_over_datasets(VARIANTS, MATRIX)["wilcoxon_holm"]["pvalues"]
    pairs = [(a, b) for i, a in enumerate(VARIANTS) for b in VARIANTS[i + 1:]]
    raw = [stats.wilcoxon(MATRIX[:, VARIANTS.index(a)], MATRIX[:, VARIANTS.index(b)], zero_method="zsplit").pvalue
           for a, b in pairs]
    order = np.argsort(raw)  # Holm: the i-th smallest times (m - i), made monotone, capped at 1
    adjusted, running = [0.0] * len(raw), 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (len(raw) - i) * raw[index]))
        adjusted[index] = running
    for (a, b), p in zip(pairs, adjusted, strict=True):
        assert result[a][b] == pytest.approx(p) and result[b][a] == pytest.approx(p)


def test_groups_are_maximal_runs_of_non_significant_variants():
    names = ["a", "b", "c", "d"]
    p = np.ones((4, 4))
    p[0, 3] = p[3, 0] = 0.01  # only a vs d differ
    assert groups_from_pvalues(names, [1, 2, 3, 4], p) == [["a", "b", "c"], ["b", "c", "d"]]
    p[0, 2] = p[2, 0] = 0.02
    assert groups_from_pvalues(names, [1, 2, 3, 4], p) == [["a", "b"], ["b", "c", "d"]]
    assert groups_from_pvalues(names, [4, 3, 2, 1], np.ones((4, 4))) == [["d", "c", "b", "a"]]


def test_two_datasets_say_no_conclusion_is_possible():
    result = compare_over_datasets(VARIANTS, MATRIX[:2])
    assert len(result["groups"]) == 1 and sorted(result["groups"][0]) == sorted(VARIANTS)
    assert "no conclusion across datasets is possible" in result["note"]


def test_two_variants_have_ranks_but_no_friedman():
    result = compare_over_datasets(["baseline", "srm"], MATRIX[:, [0, 3]])
    assert result["average_ranks"] == {"baseline": 2.0, "srm": 1.0} and result["friedman"] is None


def test_cd_diagram_is_a_png(tmp_path):
    png = cd_diagram_png(compare_over_datasets(VARIANTS, MATRIX), "six datasets")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "cd.png").write_bytes(png)
    import matplotlib.image

    image = matplotlib.image.imread(tmp_path / "cd.png")
    assert image.shape[0] > 100 and image.shape[1] > 300
