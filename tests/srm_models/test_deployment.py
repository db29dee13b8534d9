"""torch.export, torch.compile, channels_last and autocast on a small CIFAR model of every kind."""
from __future__ import annotations

import pytest
import torch

from srm_models import create_model, recalibration_kinds

KINDS = tuple(recalibration_kinds())  # every registered kind, the new ones included


def small_model(kind: str) -> torch.nn.Module:
    """A CIFAR ResNet-20 (basic blocks, the fastest) with trained-looking BN statistics."""
    torch.manual_seed(0)
    name = "cifar_resnet20" if kind == "none" else f"{kind}_cifar_resnet20"
    model = create_model(name, block="basic", input_size=16)
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))  # move the running statistics off their initial values
        for module in model.modules():
            if getattr(module, "cfc", None) is not None:
                module.cfc.normal_()  # SRM's CFC starts at zero; make its gate depend on the input
    return model.eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 16, 16)


@pytest.mark.parametrize("kind", KINDS)
def test_torch_export(kind, images):
    model = small_model(kind)
    exported = torch.export.export(model, (images,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(images), model(images), rtol=1e-4, atol=1e-5)
        other = torch.randn_like(images)
        torch.testing.assert_close(exported.module()(other), model(other), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["srm"])
def test_torch_compile_without_graph_breaks(kind, images):
    """fullgraph=True fails on any graph break; aot_eager skips C++ codegen to keep the test short
    (inductor compiles the same graph; see docs/models.md)."""
    torch.compiler.reset()
    model = small_model(kind)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(images), model(images), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_channels_last(kind, images):
    model = small_model(kind)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        got = model(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", KINDS)
def test_autocast_cpu(kind, dtype, images):
    model = small_model(kind)
    with torch.no_grad():
        expected = model(images)
        with torch.autocast("cpu", dtype=dtype):
            low = model(images)
    assert low.dtype == dtype
    tolerance = 0.05 * expected.abs().max().item() + 0.02
    assert (low.float() - expected).abs().max().item() < tolerance
    if dtype is torch.float16:
        return  # training in fp16 is a GPU recipe (with a grad scaler); on CPU bf16 is the one to train in
    model.train()
    with torch.autocast("cpu", dtype=dtype):
        out = model(images)
    assert out.dtype == dtype and torch.isfinite(out).all()
    out.float().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
