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


def kernel_stats(x: torch.Tensor, correction: int, eps: float):
    """The kernels' per-(n, c) statistics, as the training forward returns them."""
    c = x.shape[1]
    _, mean, std = cpu_kernels.srm_forward(x, None, torch.zeros(c, 2), torch.zeros(c), None,
                                           None, False, 0.0, correction, eps)
    return mean, std


def test_kernels_build_on_this_machine():
    assert cpu_kernels.enabled()
    assert cpu_kernels.load(), "the C++ build failed; run `python -m srm_models.ops` to see why"


@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (5, 7), (4, 8), (6, 11), (7, 7), (56, 56)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_statistics_match_float64(hw, dtype):
    """Every row length (vector blocks, partial blocks, the scalar tail) and both dtypes."""
    assert cpu_kernels.load()
    x = (torch.randn(3, 5, *hw) * 2 + 1).to(dtype)
    correction = 1 if hw[0] * hw[1] > 1 else 0
    mean, std = kernel_stats(x, correction, 1e-5)
    want_mean, want_std = truth_stats(x, correction, 1e-5)
    assert mean.dtype == dtype and std.dtype == dtype and mean.shape == (3, 5)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(mean.double(), want_mean, rtol=tol, atol=tol)
    torch.testing.assert_close(std.double(), want_std, rtol=tol, atol=0)


def test_statistics_stay_accurate_when_the_mean_dwarfs_the_spread():
    """Mean 1e4, std 1e-2: E[x^2] - E[x]^2 in float32 would return noise; the kernel does not."""
    x = torch.randn(2, 4, 32, 32, dtype=torch.float64).mul(1e-2).add(1e4).float()
    mean, std = kernel_stats(x, 1, 0.0)
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


GATES = {  # (bias, bn_weight, bn_bias, batch_stats): the gates the SRM module builds
    "cfc+bn training": (False, True, True, True),
    "cfc+bn, no affine": (False, False, False, True),
    "cfc with bias": (True, False, False, False),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (2, 3, 5, 7), (3, 4, 8, 8), (4, 5, 9, 11)])
@pytest.mark.parametrize("gate", list(GATES), ids=list(GATES))
def test_forward_and_backward_match_the_torch_op_passes(gate, shape, dtype, monkeypatch):
    """The fused op with the kernels against the same op on the torch-op passes."""
    has_bias, has_gamma, has_beta, batch_stats = GATES[gate]
    n, c = shape[:2]
    x, identity, grad = (torch.randn(shape, dtype=dtype) for _ in range(3))
    weight = torch.randn(c, 2, dtype=dtype)
    bias, gamma, beta = (torch.randn(c, dtype=dtype) if has else None
                         for has in (has_bias, has_gamma, has_beta))

    def run(dtype=dtype):
        t = [None if v is None else v.to(dtype) for v in (x, identity, grad, weight, bias, gamma, beta)]
        results = []
        for ident in (None, t[1]):
            out, mean, std = ops.srm_forward(t[0], ident, t[3], t[4], t[5], t[6], batch_stats,
                                             1e-5, 1, 1e-5)
            back = ops.srm_backward(t[2], t[0], None if ident is None else out, t[3], t[4], t[5],
                                    t[6], mean, std, batch_stats, 1e-5, 1, 1e-5)
            results.append((out, mean, std, *back))
        return results

    assert cpu_kernels.load()
    kernels, truth = run(), run(torch.float64)
    monkeypatch.setattr(cpu_kernels, "_loaded", False)  # the same op on the torch-op passes
    reference = run()
    for got_all, want_all, true_all in zip(kernels, reference, truth):
        for got, want, true in zip(got_all, want_all, true_all):
            assert got.shape == want.shape and got.dtype == want.dtype
            if dtype == torch.float64:
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
            else:  # as close to float64 as the passes are, or closer (BN gradients cancel)
                assert rel_error(got, true) <= 2 * rel_error(want, true) + 1e-6


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    if b.numel() == 0:
        return 0.0
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


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
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(RuntimeError, match="contiguous 4-d CPU tensor"):
        torch.ops.srm_cpu.srm_forward(x.contiguous(memory_format=torch.channels_last), None,
                                      torch.zeros(4, 2), None, None, None, False, 0.0, 1, 1e-5)
    with pytest.raises(RuntimeError, match="weight must be contiguous, in x's dtype, with 2"):
        torch.ops.srm_cpu.residual_inference_(x, torch.randn(2, 4, 3, 3), torch.zeros(3, 2),
                                              torch.zeros(4), 1, 1e-5)


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


# Float32 maps of 16 MiB or more take the kernels' streaming stores; this one (17 MB) does,
# and its odd row length puts every row but the first off the vector alignment, so the
# aligned head, the streamed body and the scalar tail all run.
STREAMED_SHAPE = (2, 2, 1031, 1031)
HUGE_PAGE = 2 << 20


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("threads", [1, 2])
def test_maps_large_enough_to_stream_match_the_reference(residual, threads):
    from test_fused import assert_matches, fwd_bwd

    assert cpu_kernels.load()
    torch.set_num_threads(threads)  # the autouse fixture restores the setting
    srm = randomised(SRM(STREAMED_SHAPE[1]))
    x, grad = torch.randn(STREAMED_SHAPE) * 1.5 + 0.3, torch.randn(STREAMED_SHAPE)
    identity = torch.randn(STREAMED_SHAPE) if residual else None
    truth = fwd_bwd(randomised(SRM(STREAMED_SHAPE[1])).double(), x.double(), grad.double(),
                    None if identity is None else identity.double(), reference=True)
    reference = fwd_bwd(srm, x, grad, identity, reference=True)
    fused = fwd_bwd(srm, x, grad, identity)
    assert_matches(fused, reference, truth, residual)


def test_results_do_not_depend_on_the_thread_count():
    """Each thread takes whole channels, and a channel is computed the same way whichever
    thread takes it: 1 and 2 threads give identical bits."""
    from test_fused import fwd_bwd

    srm = randomised(SRM(16))
    x, grad, identity = (torch.randn(4, 16, 9, 9) for _ in range(3))
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results.append(fwd_bwd(srm, x, grad, identity))
    one, two = results
    for a, b in zip([*one[:3], *one[3]], [*two[:3], *two[3]], strict=True):
        assert torch.equal(a, b)


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages (KiB) of the mapping of this process that holds ``address``."""
    inside = False
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def _thp_mode() -> str:
    try:
        text = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
    except OSError:
        return "unknown"
    return text.split("[")[1].split("]")[0] if "[" in text else "unknown"


def test_large_outputs_are_allocated_on_huge_pages():
    """Outputs of 1 MiB or more start on a 2 MiB boundary, madvised for huge pages (backed by
    them where Linux's THP is on), and behave like any tensor: resizable, freed normally."""
    x = torch.randn(2, 8, 256, 256)  # 4 MiB
    out, _, _ = cpu_kernels.srm_forward(x, None, torch.randn(8, 2), torch.randn(8), None, None,
                                        False, 0.0, 1, 1e-5)
    assert out.data_ptr() % HUGE_PAGE == 0
    torch.testing.assert_close(out.sum(), out.double().sum().float())  # readable everywhere
    if sys.platform == "linux" and _thp_mode() in ("always", "madvise"):
        assert _anon_huge_kib(out.data_ptr()) >= HUGE_PAGE // 1024
    out.resize_(2, 8, 512, 512)  # grows through the same allocator
    out.fill_(1.0)
    assert out.sum().item() == out.numel()
    small, _, _ = cpu_kernels.srm_forward(torch.randn(2, 8, 4, 4), None, torch.randn(8, 2),
                                          torch.randn(8), None, None, False, 0.0, 1, 1e-5)
    assert small.shape == (2, 8, 4, 4)  # below 1 MiB: torch's own allocator


def _mapped(address: int) -> bool:
    for line in open("/proc/self/maps"):
        start, end = (int(v, 16) for v in line.split()[0].split("-"))
        if start <= address < end:
            return True
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="the kept pages are Linux mappings")
def test_a_freed_output_keeps_its_pages_for_the_next_map_of_its_length():
    """A training step asks for the same lengths every step: a freed output's pages stay mapped
    and the next output of that length gets them, already faulted in, instead of fresh memory."""
    x = torch.randn(2, 8, 128, 128)  # 1 MiB, rounded up to one huge page
    args = (None, torch.randn(8, 2), torch.randn(8), None, None, False, 0.0, 1, 1e-5)
    first, _, _ = cpu_kernels.srm_forward(x, *args)
    address = first.data_ptr()
    del first
    assert _mapped(address)  # kept, not unmapped
    second, _, _ = cpu_kernels.srm_forward(x, *args)
    assert second.data_ptr() == address
    torch.testing.assert_close(second, cpu_kernels.srm_forward(x.clone(), *args)[0])
