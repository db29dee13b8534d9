"""ECA, GCT and SimAM against transcriptions of their papers' equations, written here independently."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srm_models import ECA, GCT, SimAM, complexity, create_model, create_recalibration, fuse_for_inference


@pytest.fixture()
def x():
    return torch.randn(3, 32, 5, 6)


def test_eca_kernel_size_follows_the_paper():
    """k = |log2(C)/γ + b/γ| rounded to the nearest odd number (at or above), γ=2, b=1."""
    for channels, k in ((256, 5), (512, 5), (1024, 5), (2048, 7)):
        module = ECA(channels)
        assert module.conv.kernel_size == (k,) and module.conv.bias is None
        assert sum(p.numel() for p in module.parameters()) == k
    assert ECA(64, kernel_size=9).conv.kernel_size == (9,)


def test_eca_matches_transcription(x):
    eca = ECA(32)  # log2(32) = 5: t = 3, odd, so k = 3
    with torch.no_grad():
        eca.conv.weight.normal_()
    w = eca.conv.weight.reshape(-1).tolist()
    k = len(w)
    assert k == 3
    pooled = x.double().mean(dim=(2, 3)).numpy()
    expected = np.empty_like(pooled)
    for n in range(pooled.shape[0]):
        for c in range(32):  # y_c = sum_j w_j * pooled_{c+j-(k-1)/2}, zero beyond the ends
            total = sum(w[j] * pooled[n, c + j - (k - 1) // 2] for j in range(k)
                        if 0 <= c + j - (k - 1) // 2 < 32)
            expected[n, c] = 1 / (1 + math.exp(-total))
    reference = x.double() * torch.from_numpy(expected)[:, :, None, None]
    torch.testing.assert_close(eca(x).double(), reference, rtol=1e-5, atol=1e-6)


def test_gct_matches_transcription(x):
    gct = GCT(32)
    assert gct.eps == 1e-5 and sum(p.numel() for p in gct.parameters()) == 3 * 32
    torch.testing.assert_close(gct(x), x)  # α=1, γ=β=0: a fresh GCT is the identity
    with torch.no_grad():
        for p in (gct.alpha, gct.gamma, gct.beta):
            p.normal_()
    a, g, b = (p.detach().double().reshape(-1).numpy() for p in (gct.alpha, gct.gamma, gct.beta))
    data = x.double().numpy()
    out = np.empty_like(data)
    for n in range(data.shape[0]):
        s = np.array([a[c] * math.sqrt((data[n, c] ** 2).sum() + 1e-5) for c in range(32)])   # eq. (1)
        s_hat = math.sqrt(32) * s / math.sqrt((s ** 2).sum() + 1e-5)                          # eq. (2)
        for c in range(32):
            out[n, c] = data[n, c] * (1 + math.tanh(g[c] * s_hat[c] + b[c]))                    # eq. (3)
    torch.testing.assert_close(gct(x).double(), torch.from_numpy(out), rtol=1e-5, atol=1e-6)


def test_simam_matches_the_energy_function(x):
    simam = SimAM(32)
    assert simam.e_lambda == 1e-4 and not list(simam.parameters())
    data = x.double().numpy()
    out = np.empty_like(data)
    lam = 1e-4
    for n in range(data.shape[0]):
        for c in range(32):
            channel = data[n, c]
            m = channel.size - 1                      # the other neurons of the channel
            mu = channel.mean()
            var = ((channel - mu) ** 2).sum() / m
            energy = 4 * (var + lam) / ((channel - mu) ** 2 + 2 * var + 2 * lam)   # minimal energy e_t*
            out[n, c] = channel / (1 + np.exp(-1 / energy))                          # X * sigmoid(1/E)
    torch.testing.assert_close(simam(x).double(), torch.from_numpy(out), rtol=1e-5, atol=1e-6)


def test_simam_on_a_one_pixel_map_is_finite():
    assert torch.isfinite(SimAM()(torch.randn(2, 4, 1, 1))).all()


@pytest.mark.parametrize("name, params", [
    ("eca_resnet50", 25_557_118), ("gct_resnet50", 25_602_344), ("simam_resnet50", 25_557_032)])
def test_resnet50_parameter_counts(name, params):
    with torch.device("meta"):
        model = create_model(name)
    assert complexity(model, 224).params == params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", ["eca", "gct", "simam"])
@pytest.mark.parametrize("backbone, options", [("cifar_resnet20", {"block": "basic"}), ("cifar_resnet20", {}),
                                                ("resnet18", {"input_size": 32})])
def test_each_kind_in_both_families_and_fuse_is_a_no_op(kind, backbone, options):
    model = create_model(f"{kind}_{backbone}", num_classes=4, **options)
    blocks = [m.recalibration for m in model.modules() if hasattr(m, "recalibration")]
    assert blocks and all(type(b).__name__ == {"eca": "ECA", "gct": "GCT", "simam": "SimAM"}[kind] for b in blocks)
    with torch.no_grad():
        for p in model.parameters():  # gates that depend on their parameters, not the identity start
            p.add_(0.05 * torch.randn_like(p))
    images = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        before = model(images)
        fused = fuse_for_inference(model)
        torch.testing.assert_close(fused(images), before)
    assert sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in model.parameters())


def test_factory_options_and_errors():
    assert create_recalibration("eca", 64, kernel_size=5).kernel_size == 5
    assert create_recalibration("gct", 8, eps=1e-3).eps == 1e-3
    with pytest.raises(ValueError, match="kernel_size=4 is not valid; use an odd integer"):
        create_recalibration("eca", 64, kernel_size=4)
    with pytest.raises(ValueError, match="e_lambda=0 is not valid"):
        create_recalibration("simam", 64, e_lambda=0)
