"""The fused SRM op: same numbers as the reference, every dtype and layout, graph-friendly."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from srm_models import ops
from srm_models.layers.srm import SRM

from test_srm import randomised  # this folder is on sys.path under pytest (no __init__.py)


def fwd_bwd(srm, x, grad, identity=None, reference=False):
    """(output, dx, d_identity, parameter grads) of one forward and backward."""
    x = x.detach().clone().requires_grad_()
    ident = None if identity is None else identity.detach().clone().requires_grad_()
    srm.zero_grad(set_to_none=True)
    with ops.use_reference(reference):
        out = srm(x) if ident is None else srm.forward_residual(x, ident)
    out.backward(grad)
    grads = [p.grad.clone() for p in srm.parameters()]
    return out.detach(), x.grad, None if ident is None else ident.grad, grads


def rel_error(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def assert_matches(fused, reference, truth, residual=False):
    """Fused float32 within 1e-5 (norm-relative) of the float32 reference, and no less accurate
    than it against float64. Where float32 itself cannot reach 1e-5 (the reference is as far
    from float64: sums that cancel to ~0, like BN gradients on 1x1 maps) the fused result must
    only be as accurate as the reference, to within a small factor (summation order differs).
    """
    pairs = [(0, None), (1, None)] + [(3, i) for i in range(len(fused[3]))]
    if residual:
        pairs.append((2, None))
    for k, i in pairs:
        got, ref, want = (r[k] if i is None else r[k][i] for r in (fused, reference, truth))
        ref_error = rel_error(ref, want)
        if ref_error < 5e-6:
            assert rel_error(got, ref) < 1e-5, (k, i)
            assert rel_error(got, want) < 2 * ref_error + 1e-6, (k, i)
        else:
            assert rel_error(got, want) < 5 * ref_error, (k, i)


LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("layout", LAYOUTS, ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", [(8, 16, 14, 14), (4, 24, 3, 5), (16, 8, 1, 1), (2, 4, 9, 9)])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_float32_matches_reference_within_1e5_relative(layout, shape, residual):
    torch.manual_seed(0)
    srm = randomised(SRM(shape[1]))
    x = (torch.randn(shape) * 1.5 + 0.3).contiguous(memory_format=layout)
    grad = torch.randn(shape)
    identity = torch.randn(shape) if residual else None
    truth = fwd_bwd(randomised(SRM(shape[1])).double(), x.double(), grad.double(),
                    None if identity is None else identity.double(), reference=True)
    reference = fwd_bwd(srm, x, grad, identity, reference=True)
    fused = fwd_bwd(srm, x, grad, identity)
    assert fused[0].is_contiguous(memory_format=layout)
    assert fused[1].is_contiguous(memory_format=layout)
    assert_matches(fused, reference, truth, residual)


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("batch_stats, with_bias", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 1, 1)])
def test_op_gradcheck_float64(residual, batch_stats, with_bias, shape):
    torch.manual_seed(0)
    n, c = shape[:2]

    def leaf(*size):
        return torch.randn(*size, dtype=torch.float64, requires_grad=True)

    x = leaf(*shape)
    identity = leaf(*shape) if residual else None
    weight, bias = leaf(c, 2), leaf(c) if with_bias else None
    gamma, beta = (leaf(c), leaf(c)) if batch_stats else (None, None)
    inputs = [t for t in (x, identity, weight, bias, gamma, beta) if t is not None]

    def f(*tensors):
        it = iter(tensors)
        args = [next(it) if t is not None else None for t in (x, identity, weight, bias, gamma, beta)]
        return ops.srm_forward(*args, batch_stats, 1e-5, 1, 1e-5)[0]

    assert torch.autograd.gradcheck(f, inputs)


def test_opcheck_schema_fake_and_autograd_registration():
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    args = (x, torch.randn(3, 4, 5, 5), torch.randn(4, 2, requires_grad=True), None,
            torch.rand(4, requires_grad=True), torch.randn(4, requires_grad=True), True, 1e-5, 1, 1e-5)
    torch.library.opcheck(torch.ops.srm_models.srm_forward.default, args)
    inference = (torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5), torch.randn(4, 2),
                 torch.randn(4), 1, 1e-5)
    torch.library.opcheck(torch.ops.srm_models.srm_residual_inference_.default, inference)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_does_not_overflow(dtype):
    """Values whose variance (~1e5) exceeds float16's range: statistics accumulate in float32."""
    torch.manual_seed(0)
    srm = randomised(SRM(8))
    x = torch.randn(4, 8, 6, 6) * 300 + 50
    grad = torch.randn_like(x)
    want = fwd_bwd(srm, x, grad)
    got = fwd_bwd(srm, x.to(dtype), grad.to(dtype))
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for g in [got[0], got[1], *got[3]]:
        assert torch.isfinite(g).all()
    assert rel_error(got[0], want[0]) < 2e-2
    assert rel_error(got[1], want[1]) < 5e-2


def test_bf16_autocast_cpu_matches_float32():
    torch.manual_seed(0)
    srm = randomised(SRM(8))
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(4, 3, 10, 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = srm(conv(x))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    y.float().sum().backward()
    assert torch.isfinite(srm.cfc.grad).all() and srm.cfc.grad.dtype == torch.float32
    torch.testing.assert_close(y.float(), srm(conv(x)).detach(), rtol=3e-2, atol=3e-2)


def test_backward_keeps_only_the_input_and_small_statistics():
    """Saved for backward: x (and the output, for the ReLU mask, in the residual form)."""
    srm = randomised(SRM(16))
    x = torch.randn(4, 16, 8, 8, requires_grad=True)
    identity = torch.randn(4, 16, 8, 8)

    def big_saved(fn, reference):
        sizes = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t,
                                                      lambda t: t):
            with ops.use_reference(reference):
                fn()
        return sum(1 for s in sizes if s >= x.numel())

    assert big_saved(lambda: srm(x), reference=False) == 1
    assert big_saved(lambda: srm.forward_residual(x, identity), reference=False) == 2
    assert big_saved(lambda: srm(x), reference=True) > 1


def test_torch_compile_keeps_the_op_in_one_graph():
    torch._dynamo.reset()
    srm = randomised(SRM(8))
    compiled = torch.compile(srm, backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 8, 5, 5)
    torch.testing.assert_close(compiled(x), srm(x))
    xc = x.clone().requires_grad_()
    compiled(xc).sum().backward()
    assert torch.isfinite(xc.grad).all()


def test_torch_export_of_eval_srm_uses_the_fused_op():
    srm = randomised(SRM(8)).eval()
    x = torch.randn(2, 8, 5, 5)
    exported = torch.export.export(srm, (x,))
    assert "srm_models.srm_forward" in str(exported.graph)
    torch.testing.assert_close(exported.module()(x), srm(x))


TRITON_CHECK = textwrap.dedent("""
    import sys
    sys.path.insert(0, "tests/srm_models")
    import torch
    from srm_models import ops
    from srm_models.layers.srm import SRM
    from srm_models.ops import fused, triton_kernels
    from test_fused import assert_matches, fwd_bwd
    from test_srm import randomised

    fused._backend = lambda *tensors: triton_kernels  # run the CUDA kernels on CPU tensors
    torch.manual_seed(0)
    for layout in (torch.contiguous_format, torch.channels_last):
        for shape in ((4, 40, 6, 7), (8, 5, 1, 1)):
            srm = randomised(SRM(shape[1]))
            x = torch.randn(shape).contiguous(memory_format=layout)
            grad, identity = torch.randn(shape), torch.randn(shape)
            truth_srm = randomised(SRM(shape[1])).double()
            for ident in (None, identity):
                got = fwd_bwd(srm, x, grad, ident)
                reference = fwd_bwd(srm, x, grad, ident, reference=True)
                truth = fwd_bwd(truth_srm, x.double(), grad.double(),
                                None if ident is None else ident.double(), reference=True)
                assert_matches(got, reference, truth, residual=ident is not None)
                assert got[0].is_contiguous(memory_format=layout)
    print("triton ok")
""")


def test_triton_kernels_under_the_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", TRITON_CHECK], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "interpret" in proc.stderr.lower() and "triton ok" not in proc.stdout:
        if "NotImplementedError" in proc.stderr or "not supported" in proc.stderr:
            pytest.skip(f"Triton's interpreter cannot run here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "triton ok" in proc.stdout


def test_inference_residual_writes_over_its_input():
    """No grad, folded BN: relu(x * g + identity) lands in x's memory, same numbers."""
    srm = randomised(SRM(8)).eval()
    x, identity = torch.randn(3, 8, 5, 5), torch.randn(3, 8, 5, 5)
    with ops.use_reference():
        expected = srm.forward_residual(x.clone(), identity)
    with torch.no_grad():
        got = srm.forward_residual(x, identity)
    assert got.data_ptr() == x.data_ptr()
    torch.testing.assert_close(got, expected)
    # with autograd recording, the input is left alone
    y = torch.randn(3, 8, 5, 5, requires_grad=True)
    assert srm.forward_residual(y, identity).data_ptr() != y.data_ptr()


def test_torch_compile_of_inference_residual():
    torch._dynamo.reset()
    srm = randomised(SRM(8)).eval()
    compiled = torch.compile(srm.forward_residual, backend="aot_eager", fullgraph=True)
    x, identity = torch.randn(3, 8, 5, 5), torch.randn(3, 8, 5, 5)
    with torch.no_grad():
        expected = srm.forward_residual(x.clone(), identity)
        torch.testing.assert_close(compiled(x.clone(), identity), expected)
