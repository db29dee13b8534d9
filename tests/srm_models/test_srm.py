"""SRM follows Sec. 3 of the paper: eqs. (1)-(9) transcribed, ablations, errors, gradients."""
from __future__ import annotations

import logging

import pytest
import torch

from srm_models import InvalidArgumentError, ops
from srm_models.layers.srm import INTEGRATIONS, POOLINGS, SRM

PATHS = ["fused", "reference"]


def run(path: str, fn, *args):
    if path == "reference":
        with ops.use_reference():
            return fn(*args)
    return fn(*args)


def randomised(srm: SRM, seed: int = 0) -> SRM:
    """Non-trivial parameters and running statistics (a fresh SRM has a zero CFC)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in srm.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
        if srm.bn is not None:
            srm.bn.running_mean.copy_(torch.randn(srm.channels, generator=gen))
            srm.bn.running_var.copy_(torch.rand(srm.channels, generator=gen) + 0.5)
    return srm


def transcription(x: torch.Tensor, srm: SRM, training: bool) -> torch.Tensor:
    """Eqs. (1)-(9) written out in float64, with the module's std and BN epsilons."""
    x = x.double()
    n, c, h, w = x.shape
    mu = x.sum(dim=(2, 3)) / (h * w)                                             # (1)
    divisor = h * w - 1 if (srm.unbiased_std and h * w > 1) else h * w
    sigma = torch.sqrt(((x - mu[:, :, None, None]) ** 2).sum(dim=(2, 3)) / divisor
                       + srm.eps)                                                # (2)
    t = torch.stack([mu, sigma], dim=2)                                          # (3)
    z = (srm.cfc.double()[None] * t).sum(dim=2)                                  # (4)
    bn = srm.bn
    if training:
        mu_z = z.sum(dim=0) / n                                                  # (5)
        var_z = ((z - mu_z) ** 2).sum(dim=0) / n                                 # (6)
    else:
        mu_z, var_z = bn.running_mean.double(), bn.running_var.double()
    z_hat = bn.weight.double() * (z - mu_z) / torch.sqrt(var_z + bn.eps) + bn.bias.double()  # (7)
    g = 1 / (1 + torch.exp(-z_hat))                                              # (8)
    return g[:, :, None, None] * x                                               # (9)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("unbiased", [True, False], ids=["unbiased", "biased"])
@pytest.mark.parametrize("shape", [(6, 8, 7, 5), (4, 16, 1, 1)])
def test_output_equals_equations_1_to_9(path, training, unbiased, shape):
    srm = randomised(SRM(shape[1], unbiased_std=unbiased)).train(training)
    x = torch.randn(shape) * 2 + 0.5
    expected = transcription(x, srm, training)
    out = run(path, srm, x)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_gradients_pass_gradcheck_float64(path):
    srm = randomised(SRM(4)).double()
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    params = (srm.cfc, srm.bn.weight, srm.bn.bias)

    def f(x, *_):
        return run(path, srm, x)

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize("path", PATHS)
def test_residual_form_is_relu_of_gated_plus_identity(path):
    srm = randomised(SRM(8))
    x, identity = torch.randn(4, 8, 6, 6), torch.randn(4, 8, 6, 6)
    expected = torch.relu(transcription(x, srm, True) + identity.double())
    out = run(path, srm.forward_residual, x, identity)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-6)


def test_cfc_starts_at_zero_so_gates_start_equal():
    srm = SRM(8)
    assert srm.cfc.shape == (8, 2) and not srm.cfc.any()
    x = torch.randn(4, 8, 5, 5)
    g = srm(x) / x
    torch.testing.assert_close(g, torch.full_like(g, 0.5))  # sigmoid(BN(0)) = sigmoid(beta=0)


def test_unbiased_is_the_default_and_a_1x1_map_has_std_sqrt_eps():
    srm = SRM(3)
    assert srm.unbiased_std is True
    from srm_models.layers.srm import style_pool
    t = style_pool(torch.randn(2, 3, 1, 1), "std", unbiased=True, eps=1e-5)
    torch.testing.assert_close(t, torch.full_like(t, 1e-5 ** 0.5))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("integration", INTEGRATIONS)
def test_every_ablation_trains_and_fused_ones_match_reference(pooling, integration):
    srm = randomised(SRM(32, pooling=pooling, integration=integration))
    d = len(pooling.split("+"))
    if srm.cfc is not None:
        assert srm.cfc.shape == (32, d)
    else:
        assert srm.mlp[0].in_features == 32 * d and srm.mlp[0].out_features == 2
    x = torch.randn(4, 32, 5, 5)
    outs, grads = [], []
    for path in PATHS:
        xr = x.clone().requires_grad_()
        out = run(path, srm, xr)
        out.square().sum().backward()
        outs.append(out)
        grads.append(xr.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_running_statistics_update_like_batchnorm():
    fused, reference = randomised(SRM(8)), randomised(SRM(8))
    x = torch.randn(6, 8, 4, 4)
    for _ in range(3):
        fused(x)
        run("reference", reference, x)
    torch.testing.assert_close(fused.bn.running_mean, reference.bn.running_mean)
    torch.testing.assert_close(fused.bn.running_var, reference.bn.running_var)
    assert fused.bn.num_batches_tracked.item() == 3


@pytest.mark.parametrize("path", PATHS)
def test_batch_of_one_in_training_is_a_clear_error(path):
    srm = SRM(4)
    with pytest.raises(InvalidArgumentError, match="at least 2 samples.*call .eval"):
        run(path, srm, torch.randn(1, 4, 3, 3))
    srm.eval()
    assert run(path, srm, torch.randn(1, 4, 3, 3)).shape == (1, 4, 3, 3)


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "mean"}, "pooling='mean' is not valid; choose one of avg\\+std, avg, std, max"),
    ({"integration": "fc"}, "integration='fc' is not valid; choose one of cfc\\+bn, cfc, mlp"),
    ({"channels": 0}, "channels must be a positive int"),
])
def test_bad_arguments_name_what_is_valid(kwargs, message):
    kwargs = {"channels": 4, **kwargs}
    with pytest.raises(InvalidArgumentError, match=message):
        SRM(**kwargs)


def test_wrong_input_shape_is_a_clear_error():
    with pytest.raises(InvalidArgumentError, match=r"expects input of shape \(N, 4, H, W\)"):
        SRM(4)(torch.randn(2, 5, 3, 3))


def test_reference_path_is_logged_once_at_debug(caplog):
    srm = SRM(4, pooling="max")
    from srm_models.ops import _logged_reasons
    _logged_reasons.clear()
    with caplog.at_level(logging.DEBUG, logger="srm_models.ops"):
        for _ in range(3):
            srm(torch.randn(2, 4, 3, 3))
    messages = [r.getMessage() for r in caplog.records if "reference" in r.getMessage()]
    assert len(messages) == 1 and "pooling='max'" in messages[0]


def test_force_reference_by_environment_and_context(monkeypatch):
    srm = SRM(4)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    assert "Mul" not in type(srm(x).grad_fn).__name__
    with ops.use_reference():
        assert type(srm(x).grad_fn).__name__ == "MulBackward0"
    monkeypatch.setenv(ops.FORCE_REFERENCE_ENV, "1")
    assert type(srm(x).grad_fn).__name__ == "MulBackward0"
    monkeypatch.setenv(ops.FORCE_REFERENCE_ENV, "0")
    assert "Mul" not in type(srm(x).grad_fn).__name__
