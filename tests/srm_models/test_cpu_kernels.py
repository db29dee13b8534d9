"""The compiled CPU kernels: built here, as accurate as float64 allows, and optional."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from srm_models import fuse_for_inference, ops
from srm_models.layers.srm import SRM
from srm_models.ops import cpu_kernels, fused, passes

from test_srm import randomised  # this folder is on sys.path under pytest (no __init__.py)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def truth_stats(x: torch.Tensor, correction: int, eps: float):
    """Mean and sqrt(var + eps) of the same values, in float64."""
    rows = x.double().flatten(2)
    return rows.mean(2), (rows.var(2, correction=correction) + eps).sqrt()


def test_kernels_build_on_this_machine():
    assert cpu_kernels.enabled()
    assert cpu_kernels.load(), "the C++ build failed; run `python -m srm_models.ops` to see why"


@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (5, 7), (4, 8), (6, 11), (7, 7), (56, 56)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_style_stats_match_float64(hw, dtype):
    """Every row length (vector blocks, partial blocks, the scalar tail) and both dtypes."""
    assert cpu_kernels.load()
    x = (torch.randn(3, 5, *hw) * 2 + 1).to(dtype)
    correction = 1 if hw[0] * hw[1] > 1 else 0
    mean, std = cpu_kernels.style_stats(x, correction, 1e-5)
    want_mean, want_std = truth_stats(x, correction, 1e-5)
    assert mean.dtype == dtype and std.dtype == dtype and mean.shape == (3, 5)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(mean.double(), want_mean, rtol=tol, atol=tol)
    torch.testing.assert_close(std.double(), want_std, rtol=tol, atol=0)


def test_style_stats_stay_accurate_when_the_mean_dwarfs_the_spread():
    """Mean 1e4, std 1e-2: E[x^2] - E[x]^2 in float32 would return noise; the kernel does not."""
    x = torch.randn(2, 4, 32, 32, dtype=torch.float64).mul(1e-2).add(1e4).float()
    mean, std = cpu_kernels.style_stats(x, 1, 0.0)
    want_mean, want_std = truth_stats(x, 1, 0.0)
    torch.testing.assert_close(std.double(), want_std, rtol=1e-6, atol=0)
    torch.testing.assert_close(mean.double(), want_mean, rtol=1e-7, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 8, 7, 7), (3, 16, 14, 14), (4, 8, 1, 1), (2, 8, 5, 9)])
def test_residual_inference_matches_the_reference(shape, dtype):
    srm = fuse_for_inference(randomised(SRM(shape[1])))
    srm.to(dtype)
    x, identity = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
    with ops.use_reference():
        want = srm.forward_residual(x.clone(), identity)
    with torch.no_grad():
        got = srm.forward_residual(x, identity)
    assert got.data_ptr() == x.data_ptr()  # written over its input
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


SHAPES = [(2, 3, 1, 1), (2, 3, 5, 7), (3, 4, 8, 8), (2, 5, 9, 11)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_training_passes_match_the_torch_op_passes(shape, dtype):
    """recalibrate, gate_grad and input_grad: same numbers as ``passes`` (float64 sums here)."""
    n, c = shape[:2]
    x, identity, grad = (torch.randn(shape, dtype=dtype) for _ in range(3))
    gate, mean, a, b = (torch.rand(n, c, dtype=dtype) for _ in range(4))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for ident in (None, identity):
        torch.testing.assert_close(cpu_kernels.recalibrate(x, gate, ident),
                                   passes.recalibrate(x, gate, ident), **tol)
    out = passes.recalibrate(x, gate, identity)
    for o in (None, out):
        got_gate, got_masked = cpu_kernels.gate_grad(grad, x, o)
        want_gate, want_masked = passes.gate_grad(grad, x, o, dtype)
        torch.testing.assert_close(got_gate, want_gate, **tol)
        if o is None:
            assert got_masked is None
        else:
            torch.testing.assert_close(got_masked, want_masked, rtol=0, atol=0)
    torch.testing.assert_close(cpu_kernels.input_grad(grad, x, gate, mean, a, b),
                               passes.input_grad(grad, x, gate, mean, a, b), **tol)


def test_contiguous_float_maps_take_the_kernels_and_others_the_passes():
    x = torch.randn(2, 4, 3, 3)
    assert fused._backend(x, None, x) is cpu_kernels
    assert fused._backend(x, x.contiguous(memory_format=torch.channels_last)) is passes
    assert fused._backend(x.half()) is passes


def test_residual_inference_keeps_nan_like_relu():
    x, identity = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    identity[1, 2, 0, 0] = float("nan")
    cpu_kernels.residual_inference_(x, identity, torch.zeros(4, 2), torch.zeros(4), 1, 1e-5)
    assert torch.isnan(x[1, 2, 0, 0])
    assert torch.isfinite(x[0]).all() and (x[0] >= 0).all()


def test_kernel_rejects_what_it_cannot_read():
    x = torch.randn(2, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    with pytest.raises(RuntimeError, match="contiguous 4-d CPU tensor"):
        torch.ops.srm_cpu.style_stats(x, 1, 1e-5)
    with pytest.raises(RuntimeError, match=r"weight must be \(C, 2\)"):
        torch.ops.srm_cpu.residual_inference_(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3),
                                              torch.zeros(3, 2), torch.zeros(4), 1, 1e-5)


def test_layouts_and_dtypes_it_skips_say_so_once_at_debug(caplog):
    x = torch.randn(2, 4, 3, 3)
    caplog.set_level("DEBUG", logger="srm_models.ops.cpu_kernels")
    cpu_kernels._skips_logged.clear()
    assert cpu_kernels.applies(x)
    for _ in range(2):
        assert not cpu_kernels.applies(x.contiguous(memory_format=torch.channels_last))
        assert not cpu_kernels.applies(x.bfloat16())
    skips = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skips) == 2, skips
    assert any("channels_last" in m for m in skips) and any("bfloat16" in m for m in skips)


CHECK_WITHOUT_KERNELS = """
import logging, torch
logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
from srm_models import create_model, fuse_for_inference
from srm_models.ops import cpu_kernels, fused, passes
torch.manual_seed(0)
model = fuse_for_inference(create_model("srm_cifar_resnet20", num_classes=10))
with torch.no_grad():
    out = model(torch.randn(2, 3, 32, 32))
print("loaded", cpu_kernels.load(), "sum", float(out.double().sum()))
"""


def _run_without(env_update: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_update}
    return subprocess.run([sys.executable, "-c", CHECK_WITHOUT_KERNELS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _output_sum(stdout: str) -> float:
    return float(stdout.split("sum")[-1])


@pytest.fixture(scope="module")
def with_kernels():
    proc = _run_without({})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loaded True" in proc.stdout
    return _output_sum(proc.stdout)


def test_switched_off_runs_the_torch_passes_with_the_same_result(with_kernels):
    proc = _run_without({cpu_kernels.ENV: "0"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loaded False" in proc.stdout
    assert "SRM CPU kernels are off" in proc.stderr
    assert _output_sum(proc.stdout) == pytest.approx(with_kernels, rel=1e-5)


def test_a_failed_build_falls_back_and_says_why(with_kernels, tmp_path):
    """No working compiler: the build fails, a debug message names it, inference still runs."""
    proc = _run_without({"CXX": "/bin/false", "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loaded False" in proc.stdout
    assert "could not be built" in proc.stderr
    assert _output_sum(proc.stdout) == pytest.approx(with_kernels, rel=1e-5)
