"""Every registered model trains a step; the recalibration sits where Fig. 2b puts it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from srm_models import create_model, list_models
from srm_models.layers import Recalibration
from srm_models.resnet import BasicBlock, Bottleneck


def small_input_size(name: str) -> int:
    return 32 if "cifar" in name else 64  # ImageNet nets: 64 -> 2x2 maps in the last stage


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    size = small_input_size(name)
    model = create_model(name, num_classes=5, input_size=size)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv1.weight.grad.abs().sum() > 0
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert blocks and all(isinstance(b.recalibration, Recalibration) for b in blocks)


class ZeroGate(Recalibration):
    """Gates every channel to zero: a block then outputs relu(shortcut) only if the gate is on
    the residual branch before the addition (Fig. 2b)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class CountingGate(Recalibration):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward_residual(x, identity)


@pytest.mark.parametrize("name, kwargs", [("srm_resnet18", {}), ("se_resnet50", {}),
                                          ("cifar_resnet20", {"block": "basic"}), ("ge_cifar_resnet20", {})])
def test_recalibration_gates_the_residual_branch_before_the_addition(name, kwargs):
    model = create_model(name, input_size=32, **kwargs).eval()
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    x = torch.randn(2, model.conv1.in_channels, 32, 32)
    with torch.no_grad():
        stem = model.relu(model.bn1(model.conv1(x)))
        if hasattr(model, "maxpool"):
            stem = model.maxpool(stem)
        block = blocks[0]
        block.recalibration = ZeroGate()
        identity = stem if block.downsample is None else block.downsample(stem)
        torch.testing.assert_close(block(stem), torch.relu(identity))


def test_every_block_ends_with_forward_residual():
    model = create_model("cifar_resnet20", block="basic")
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    for block in blocks:
        block.recalibration = CountingGate()
    model(torch.randn(2, 3, 32, 32))
    assert [b.recalibration.calls for b in blocks] == [1] * 9


def test_srm_cfc_keeps_its_zero_init():
    """The backbone's He initialisation must not touch the recalibration's own initialisation."""
    model = create_model("srm_cifar_resnet20")
    cfcs = [m.cfc for m in model.modules() if getattr(m, "cfc", None) is not None]
    assert cfcs and all(torch.count_nonzero(w) == 0 for w in cfcs)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.std() > 0 for c in convs)
