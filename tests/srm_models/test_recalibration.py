"""SE, GE-θ and CBAM against direct transcriptions of their papers; the factory and its errors."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from srm_models import CBAM, GE, SE, SRM, InvalidArgumentError, NoRecalibration, create_recalibration
from srm_models.layers import Recalibration


@pytest.fixture()
def x():
    torch.manual_seed(0)
    return torch.randn(4, 32, 6, 5)


def test_se_matches_transcription(x):
    se = SE(32).eval()
    with torch.no_grad():
        for p in se.parameters():
            p.normal_()
    z = x.mean(dim=(2, 3))                                            # squeeze
    w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias
    w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias
    s = torch.sigmoid(F.linear(F.relu(F.linear(z, w1, b1)), w2, b2))  # excite
    torch.testing.assert_close(se(x), x * s[:, :, None, None])
    assert se.fc1.out_channels == 32 // 16 and se.fc1.bias is not None and se.fc2.bias is not None


def test_ge_matches_transcription(x):
    ge = GE(32, feature_size=(6, 5))
    with torch.no_grad():
        ge.gather.weight.normal_()
        ge.gather.bias.normal_()
    for mode in ("train", "eval"):
        ge.train(mode == "train")
        gathered = (x * ge.gather.weight[:, 0]).sum(dim=(2, 3)) + ge.gather.bias   # per-channel dot
        if mode == "train":
            mean, var = gathered.mean(0), gathered.var(0, unbiased=False)
        else:
            mean, var = ge.bn.running_mean, ge.bn.running_var
        normed = (gathered - mean) / torch.sqrt(var + ge.bn.eps) * ge.bn.weight + ge.bn.bias
        expected = x * torch.sigmoid(normed)[:, :, None, None]
        torch.testing.assert_close(ge(x), expected, rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in ge.parameters()) == 32 * (6 * 5 + 3)


def test_ge_rejects_a_map_of_another_size(x):
    with pytest.raises(ValueError, match="built for 7x7 feature maps but got 6x5"):
        GE(32, feature_size=7)(x)


def test_cbam_matches_transcription(x):
    cbam = CBAM(32).eval()
    mlp = cbam.channel.mlp
    channel = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    y = x * channel
    spatial = torch.sigmoid(cbam.spatial.bn(cbam.spatial.conv(
        torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1))))
    torch.testing.assert_close(cbam(x), y * spatial)


@pytest.mark.parametrize("kind, cls", [("none", NoRecalibration), ("se", SE), ("ge", GE),
                                        ("srm", SRM), ("cbam", CBAM)])
def test_factory_builds_every_kind(kind, cls, x):
    extra = {"feature_size": (6, 5)} if kind == "ge" else {}
    module = create_recalibration(kind, 32, **extra)
    assert isinstance(module, cls) and isinstance(module, Recalibration)
    out = module(x)
    assert out.shape == x.shape
    identity = torch.randn_like(x)
    torch.testing.assert_close(module.forward_residual(x.clone(), identity), F.relu(module(x) + identity))


def test_factory_passes_options():
    assert create_recalibration("srm", 8, pooling="avg+max").pooling == "avg+max"
    assert create_recalibration("se", 64, reduction=4).fc1.out_channels == 16
    assert create_recalibration("cbam", 64, reduction=8).channel.mlp[0].out_channels == 8


@pytest.mark.parametrize("kind, kwargs, message", [
    ("sk", {}, "unknown recalibration kind 'sk'; valid kinds: none, se, ge, srm, cbam, eca, gct, simam"),
    ("se", {"pooling": "avg"}, "does not take 'pooling'.*takes: reduction"),
    ("srm", {"pooling": "median"}, "pooling='median' is not valid; choose one of"),
    ("srm", {"integration": "gru"}, "integration='gru' is not valid"),
    ("ge", {}, "needs feature_size"),
    ("ge", {"feature_size": (0, 3)}, "feature_size=.* is not valid"),
    ("se", {"feature_size": 4}, "does not take feature_size; only 'ge' take it"),
    ("se", {"reduction": 0}, "reduction=0 is not valid"),
    ("none", {"reduction": 4}, "takes: none"),
])
def test_factory_errors_say_what_is_valid(kind, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        create_recalibration(kind, 16, **kwargs)


def test_factory_rejects_bad_channels():
    with pytest.raises(InvalidArgumentError, match="channels=0 is not valid"):
        create_recalibration("se", 0)
