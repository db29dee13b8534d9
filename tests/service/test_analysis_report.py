"""The analyses' statistics against values worked out here (by hand, numpy, SciPy), and their plots."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread
from scipy import stats

from service.analysis_report import Part, auc, draw, summarize_channel_weights, summarize_pruning
from service.analysis_tables import to_markdown

RATIOS = [0.0, 0.5, 1.0]


def pruning_part(trial_id, variant, fold, gate, random):
    return Part(trial_id, variant, fold, 0, {"top1": gate[0], "ratios": RATIOS, "device": "cpu",
                                             "stages": {"2": {"gate": gate, "random": random}}})


PRUNING = [
    pruning_part(1, "se", 0, [90, 70, 20], [90, 50, 20]),
    pruning_part(2, "se", 1, [80, 60, 10], [80, 55, 10]),
    pruning_part(3, "se", 2, [85, 75, 15], [85, 40, 15]),
    pruning_part(4, "srm", 0, [92, 80, 30], [92, 50, 30]),
    pruning_part(5, "srm", 1, [84, 78, 12], [84, 60, 12]),
    pruning_part(6, "srm", 2, [88, 70, 25], [88, 52, 25]),
]


def test_auc_is_the_trapezoid_rule():
    # (90 + 70) / 2 * 0.5 + (70 + 20) / 2 * 0.5 = 40 + 22.5
    assert auc(RATIOS, [90, 70, 20]) == 62.5
    assert auc([0.0, 0.1, 1.0], [100, 100, 0]) == pytest.approx(10 + 45)


def test_pruning_summary_against_numpy_and_scipy():
    summary = summarize_pruning(PRUNING)
    se = summary["curves"]["se"]["2"]["gate"]
    assert se["mean"] == pytest.approx([85, 205 / 3, 15])
    assert se["std"] == pytest.approx(np.std([[90, 70, 20], [80, 60, 10], [85, 75, 15]], axis=0, ddof=1))
    learned = [62.5, 52.5, 62.5]   # by hand: (a + b)/4 + (b + c)/4
    random = [52.5, 50.0, 45.0]
    entry = summary["auc"]["se"]["2"]
    assert [row["auc"]["2"]["gate"] for row in summary["trials"] if row["variant"] == "se"] == learned
    assert entry["gate"]["mean"] == pytest.approx(np.mean(learned))
    assert entry["gate"]["std"] == pytest.approx(np.std(learned, ddof=1))
    test = entry["gate_vs_random"]
    assert test["gain_mean"] == pytest.approx(np.mean(np.subtract(learned, random)))
    assert test["t_pvalue"] == pytest.approx(stats.ttest_rel(learned, random).pvalue)
    assert test["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(np.subtract(learned, random)).pvalue)
    srm_learned = [auc(RATIOS, p.result["stages"]["2"]["gate"]) for p in PRUNING[3:]]
    (comparison,) = summary["auc_comparisons"]["2"]
    assert (comparison["a"], comparison["b"], comparison["n_pairs"]) == ("se", "srm", 3)
    assert comparison["t_pvalue"] == pytest.approx(stats.ttest_rel(srm_learned, learned).pvalue)
    assert "AUC learned" in to_markdown("pruning", summary)


def weights_part(trial_id, variant, fold, with_diag, without_diag, distinct):
    return Part(trial_id, variant, fold, 0, {
        "top1": 50.0, "block": "conv2_3", "total": {"with_diagonal": with_diag, "without_diagonal": without_diag},
        "blocks": {"conv2_1": {"with_diagonal": with_diag / 2}, "conv2_3": {"with_diagonal": with_diag / 2}},
        "distinct_top_images": distinct, "top_images": list(range(4)),
        "correlation": [[1.0, 0.5, None, -0.2], [0.5, 1.0, None, 0.1], [None] * 4, [-0.2, 0.1, None, 1.0]]})


WEIGHTS = [weights_part(1, "se", 0, 400.0, 300.0, 5), weights_part(2, "se", 1, 420.0, 330.0, 7),
           weights_part(3, "srm", 0, 140.0, 60.0, 30), weights_part(4, "srm", 1, 150.0, 66.0, 28)]


def test_channel_weight_summary_against_numpy_and_scipy():
    summary = summarize_channel_weights(WEIGHTS)
    assert summary["sum_sq"]["se"]["with_diagonal"]["mean"] == 410.0
    assert summary["sum_sq"]["srm"]["without_diagonal"]["std"] == pytest.approx(np.std([60, 66], ddof=1))
    assert summary["sum_sq_per_block"]["srm"]["conv2_1"] == 72.5
    assert summary["distinct_top_images"]["srm"]["mean"] == 29.0
    (comparison,) = summary["comparisons"]["with_diagonal"]
    assert comparison["gain_mean"] == pytest.approx(np.mean([140 - 400, 150 - 420]))
    assert comparison["t_pvalue"] == pytest.approx(stats.ttest_rel([140, 150], [400, 420]).pvalue)
    assert "distinct top images" in to_markdown("channel_weights", summary)


def test_plots_are_valid_pngs(tmp_path):
    pruning = draw("pruning", summarize_pruning(PRUNING), PRUNING, tmp_path / "p")
    (tmp_path / "w").mkdir()
    for trial_id, tint in ((1, 40), (3, 200)):  # the thumbnails the runner keeps: one grid per variant
        np.save(tmp_path / "w" / f"top-{trial_id}.npy", np.full((4, 8, 8, 3), tint, np.uint8))
    weights = draw("channel_weights", summarize_channel_weights(WEIGHTS), WEIGHTS, tmp_path / "w")
    assert set(pruning) == {"pruning"} and set(weights) == {"correlation", "top_images"}
    for path in [*pruning.values(), *weights.values()]:
        pixels = imread(path)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200 and pixels[..., :3].std() > 0.05
