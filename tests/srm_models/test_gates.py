"""srm_models.gates: block names, recorded gates, and pruning by gate against hand-built networks."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import srm_models
from srm_models.gates import gated_blocks, gated_stages, prune_stage, pruned_count, record_gates

KINDS = ["se", "ge", "srm", "cbam"]


def trained_like(name: str, **kw) -> nn.Module:
    """A small model with non-trivial BN statistics and gates (as after training), in eval mode."""
    torch.manual_seed(0)
    model = srm_models.create_model(name, num_classes=5, input_size=16, **kw)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
        if isinstance(module, srm_models.SRM):
            module.cfc.data.normal_(0, 1)
    return model.eval()


class ShortcutOnly(nn.Module):
    """A residual block with its residual branch removed: relu(shortcut(x))."""

    def __init__(self, downsample: nn.Module | None):
        super().__init__()
        self.downsample = downsample

    def forward(self, x):
        return F.relu(x if self.downsample is None else self.downsample(x))


def test_block_names_follow_the_paper():
    model = srm_models.create_model("se_cifar_resnet56", num_classes=10)
    names = list(gated_blocks(model))
    assert len(names) == 27 and names[0] == "conv2_1" and "conv2_6" in names and names[-1] == "conv4_9"
    assert gated_blocks(model)["conv2_6"].fc2.out_channels == 64  # the paper's 64 channels of conv2-6
    resnet50 = srm_models.create_model("srm_resnet50", num_classes=10, input_size=64)
    assert {s: len(b) for s, b in gated_stages(resnet50).items()} == {2: 3, 3: 4, 4: 6, 5: 3}
    assert gated_blocks(srm_models.create_model("cifar_resnet20")) == {}  # the baseline has no gates


@pytest.mark.parametrize("kind", KINDS)
def test_recorded_gates_are_the_modules_gates(kind):
    model = trained_like(f"{kind}_cifar_resnet20")
    images = torch.randn(6, 3, 16, 16)
    inputs = {}
    module = gated_blocks(model)["conv3_2"]
    handle = module.register_forward_pre_hook(lambda m, args: inputs.update(x=args[0].clone()))
    with torch.no_grad(), record_gates(model) as recorded:
        logits = model(images)
    handle.remove()
    assert set(recorded) == set(gated_blocks(model)) and all(len(v) == 1 for v in recorded.values())
    gate_of = module.channel if kind == "cbam" else module.gate
    expected = gate_of(inputs["x"]).reshape(6, -1)
    torch.testing.assert_close(recorded["conv3_2"][0], expected)
    with torch.no_grad():  # observing changes nothing in the output (SRM leaves its fused path)
        torch.testing.assert_close(logits, model(images), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_ratio_one_removes_the_stages_residual_branches(kind):
    model = trained_like(f"{kind}_cifar_resnet20")
    images = torch.randn(4, 3, 16, 16)
    for stage_number, layer in ((2, "layer1"), (3, "layer2"), (4, "layer3")):
        hand_built = copy.deepcopy(model)
        stage = getattr(hand_built, layer)
        for index, block in enumerate(stage):
            stage[index] = ShortcutOnly(block.downsample)
        with torch.no_grad():
            with prune_stage(model, stage_number, 1.0):
                pruned = model(images)
            expected = hand_built(images)
        torch.testing.assert_close(pruned, expected, rtol=1e-5, atol=1e-5)


def test_ratio_zero_is_the_unpruned_network_and_random_order_is_seeded():
    model = trained_like("srm_cifar_resnet20")
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        plain = model(images)
        with prune_stage(model, 3, 0.0):
            unpruned = model(images)
        runs = []
        for _ in range(2):
            with prune_stage(model, 3, 0.5, order="random", generator=torch.Generator().manual_seed(3)):
                runs.append(model(images))
        with prune_stage(model, 3, 0.5, order="gate"):
            by_gate = model(images)
    torch.testing.assert_close(unpruned, plain, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(runs[0], runs[1])
    assert not torch.allclose(runs[0], plain) and not torch.allclose(by_gate, runs[0])


def test_gate_order_zeroes_the_lowest_gated_channels():
    """One block, checked by hand: the zeroed channels of the recalibrated output are the lowest gates."""
    model = trained_like("se_cifar_resnet20")
    module = gated_blocks(model)["conv4_3"]
    seen = {}
    with torch.no_grad(), record_gates(model, ["conv4_3"]) as recorded, prune_stage(model, 4, 0.25):
        # registered after the pruning hook, so it sees the pruned output
        handle = module.register_forward_hook(lambda m, i, out: seen.update(out=out.clone()))
        model(torch.randn(3, 3, 16, 16))
    handle.remove()
    gate, out = recorded["conv4_3"][0], seen["out"]
    channels = gate.shape[1]
    assert channels == 256 and pruned_count(0.25, channels) == 64 and pruned_count(0.1, 64) == 6
    for image in range(3):
        lowest = set(gate[image].argsort()[:64].tolist())
        zeroed = {c for c in range(channels) if not out[image, c].abs().sum()}
        assert zeroed == lowest


def test_bad_arguments_name_what_is_valid():
    model = trained_like("se_cifar_resnet20")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pruned_count(1.5, 10)
    with pytest.raises(ValueError, match="valid stages: 2, 3, 4"):
        with prune_stage(model, 7, 0.5):
            pass
    with pytest.raises(ValueError, match="valid blocks: conv2_1"):
        with record_gates(model, ["conv9_9"]):
            pass
    with pytest.raises(TypeError, match="no per-channel gate"):
        srm_models.NoRecalibration().register_gate_hook(lambda m, g: None)
