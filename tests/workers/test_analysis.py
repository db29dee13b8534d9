"""One trained trial's analyses (workers.analysis): the ratio-0 identity, the correlation sums
against numpy, the random control, the top-activated images, and missing weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.srm_models.test_gates import ShortcutOnly
from tests.workers.specs import tiny_spec
from workers.analysis import TrialData, run_trial_analysis
from workers.trial import run_trial
from workers.weights import WeightsMissing, keep_locally


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An SRM trial trained for 2 epochs, its weights kept as the service keeps them without MLflow."""
    folder = tmp_path_factory.mktemp("analysis")
    spec = tiny_spec("srm", fold=1, epochs=3)
    result = run_trial(spec, data_dir=folder, checkpoint_dir=folder / "ckpt")
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SRM_BENCH_HOME", str(home))
        uri = keep_locally(result["checkpoint_path"], result["content_hash"])
    assert uri == (home / "models" / f"{result['content_hash']}.pt").as_uri()
    return spec, result, uri, folder


def test_pruning_at_ratio_zero_is_the_trials_own_top1(trained):
    spec, result, uri, folder = trained
    out = run_trial_analysis("pruning", spec.to_dict(), uri, {"ratios": [0.0, 0.5, 1.0], "seed": 3},
                             data_dir=folder, device="cpu")
    assert out["num_eval"] == result["num_eval"] and out["split_hash"] == result["split_hash"]
    assert abs(out["top1"] - result["top1"]) < 0.01
    assert set(out["stages"]) == {"2", "3", "4"}
    for curves in out["stages"].values():
        assert abs(curves["gate"][0] - result["top1"]) < 0.01  # ratio 0: nothing pruned
        assert abs(curves["random"][0] - result["top1"]) < 0.01
        assert all(0 <= v <= 100 for v in curves["gate"] + curves["random"])
    again = run_trial_analysis("pruning", spec.to_dict(), uri, {"ratios": [0.0, 0.5, 1.0], "seed": 3},
                               data_dir=folder, device="cpu")
    assert again["stages"] == out["stages"]  # the random control is seeded
    other_seed = run_trial_analysis("pruning", spec.to_dict(), uri, {"ratios": [0.5], "seed": 4},
                                    data_dir=folder, device="cpu")
    assert other_seed["ratios"] == [0.5]


def test_correlation_sums_match_numpy_on_the_recorded_weights(trained):
    spec, result, uri, folder = trained
    out = run_trial_analysis("channel_weights", spec.to_dict(), uri, {"block": "conv3_2", "keep_gates": True},
                             data_dir=folder, device="cpu")
    gates = out["_gates"]
    assert set(gates) == set(out["blocks"]) and len(gates) == 9
    assert all(g.shape[0] == result["num_eval"] for g in gates.values())
    total = 0.0
    for name, values in gates.items():
        values = values.astype(np.float64)
        live = values[:, values.max(axis=0) > values.min(axis=0)]
        # independent: Pearson r from centred columns, written out
        centred = live - live.mean(axis=0)
        norms = np.sqrt((centred ** 2).sum(axis=0))
        r = (centred.T @ centred) / np.outer(norms, norms)
        expected = float((r ** 2).sum())
        assert out["blocks"][name]["with_diagonal"] == pytest.approx(expected, rel=1e-6)
        assert out["blocks"][name]["without_diagonal"] == pytest.approx(expected - live.shape[1], rel=1e-6, abs=1e-6)
        total += expected
    assert out["total"]["with_diagonal"] == pytest.approx(total, rel=1e-6)

    chosen = gates["conv3_2"][:, :64]
    assert out["block"] == "conv3_2" and len(out["top_images"]) == min(64, chosen.shape[1])
    assert out["distinct_top_images"] == len(set(chosen.argmax(axis=0).tolist()))
    assert out["_thumbnails"].shape == (chosen.shape[1], 16, 16, 3) and out["_thumbnails"].dtype == np.uint8
    matrix = np.array(out["correlation"], dtype=float)
    assert matrix.shape == (chosen.shape[1],) * 2
    assert np.nanmax(np.abs(matrix - np.corrcoef(chosen, rowvar=False))) < 1e-4


def test_the_default_block_is_the_last_of_the_first_stage(trained):
    spec, _, uri, folder = trained
    out = run_trial_analysis("channel_weights", spec.to_dict(), uri, {}, data_dir=folder, device="cpu")
    assert out["block"] == "conv2_3"  # cifar_resnet20 has 3 blocks per stage
    assert "_gates" not in out


def test_missing_weights_say_so(trained, tmp_path):
    spec, _, _, folder = trained
    with pytest.raises(WeightsMissing, match="cannot be read"):
        run_trial_analysis("pruning", spec.to_dict(), (tmp_path / "gone.pt").as_uri(), {}, data_dir=folder)
    with pytest.raises(WeightsMissing, match="no weights were recorded"):
        run_trial_analysis("pruning", spec.to_dict(), None, {}, data_dir=folder)


def test_ratio_one_is_the_network_without_the_stages_residual_branches(trained):
    """On the trained weights and the held-out fold: pruning everything in a stage scores what a
    hand-built network with that stage's residual branches removed scores."""
    spec, _, uri, folder = trained
    out = run_trial_analysis("pruning", spec.to_dict(), uri, {"ratios": [1.0]}, data_dir=folder, device="cpu")
    for stage_number, layer in ((2, "layer1"), (3, "layer2"), (4, "layer3")):
        hand_built = TrialData(spec.to_dict(), uri, folder, "cpu")
        stage = getattr(hand_built.model, layer)
        for index, block in enumerate(stage):
            stage[index] = ShortcutOnly(block.downsample)
        with torch.no_grad():
            assert abs(hand_built.top1() - out["stages"][str(stage_number)]["gate"][0]) < 0.01
        assert out["stages"][str(stage_number)]["gate"] == out["stages"][str(stage_number)]["random"]
