"""The fused SRM op: ``torch.ops.srm_models.srm_forward`` / ``srm_backward``.

Registered with ``torch.library`` (fake impls for tracing, autograd wired to the closed-form
backward), so ``torch.compile`` keeps it as one node and ``torch.export`` can export it. Each
device runs the same three stages -- statistics in one read, the tiny gate, one pass that
applies it -- from ``passes`` (torch ops; the CPU and any device) or from Triton kernels on
CUDA when Triton is importable. On the CPU, contiguous float32/float64 maps take the compiled
``cpu_kernels`` instead, which run the whole op (forward, backward, inference tail) channel by
channel, reading each map once.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from . import cpu_kernels, passes
from . import gate as G

_EMPTY_GRAD_SHAPE = (0,)


def _backend(x: Tensor, *others: Optional[Tensor]):
    """Triton on CUDA, the compiled kernels on the CPU where they apply, else torch-op passes."""
    if x.device.type == "cuda":
        from . import triton_kernels
        if triton_kernels.available(x):
            return triton_kernels
    if cpu_kernels.applies(x, *(t for t in others if t is not None)):
        return cpu_kernels
    return passes


def _forward_impl(x: Tensor, identity: Optional[Tensor], weight: Tensor, bias: Optional[Tensor],
                  bn_weight: Optional[Tensor], bn_bias: Optional[Tensor], batch_stats: bool,
                  bn_eps: float, correction: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    backend = _backend(x, identity)
    correction = G.effective_correction(x.shape[2] * x.shape[3], correction)
    if backend is cpu_kernels:
        return cpu_kernels.srm_forward(x, identity, weight, bias, bn_weight, bn_bias, batch_stats,
                                       bn_eps, correction, eps)
    with torch.autocast(x.device.type, enabled=False):
        mean, std = backend.style_stats(x, correction, eps, G.compute_dtype(x))
        g = G.gate_forward(mean, std, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps)
        out = backend.recalibrate(x, g, identity)
    return out, mean, std


@torch.library.custom_op("srm_models::srm_forward", mutates_args=())
def srm_forward(x: Tensor, identity: Optional[Tensor], weight: Tensor, bias: Optional[Tensor],
                bn_weight: Optional[Tensor], bn_bias: Optional[Tensor], batch_stats: bool,
                bn_eps: float, correction: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """SRM on x (N, C, H, W): returns (x * g or relu(x * g + identity), mean, std)."""
    return _forward_impl(x, identity, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps,
                         correction, eps)


@srm_forward.register_fake
def _(x, identity, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps, correction, eps):
    stats = x.new_empty(x.shape[:2], dtype=G.compute_dtype(x))
    out = torch.empty_like(x, memory_format=passes.row_layout(x))
    return out, stats, torch.empty_like(stats)


@torch.library.custom_op("srm_models::srm_backward", mutates_args=())
def srm_backward(grad_out: Tensor, x: Tensor, out: Optional[Tensor], weight: Tensor,
                 bias: Optional[Tensor], bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
                 mean: Tensor, std: Tensor, batch_stats: bool, bn_eps: float, correction: int,
                 eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Closed-form gradients of ``srm_forward``; ``out`` is given for the residual form.

    Returns (dx, d_identity, d_weight, d_bias, d_bn_weight, d_bn_bias); absent ones are empty.
    """
    backend = _backend(x, grad_out, out)
    hw = x.shape[2] * x.shape[3]
    correction = G.effective_correction(hw, correction)
    if backend is cpu_kernels:
        return cpu_kernels.srm_backward(grad_out, x, out, weight, bias, bn_weight, bn_bias, mean,
                                        std, batch_stats, bn_eps, correction, eps)
    with torch.autocast(x.device.type, enabled=False):
        g = G.gate_forward(mean, std, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps)
        grad_gate, masked = backend.gate_grad(grad_out, x, out, mean.dtype)
        grads = G.gate_backward(grad_gate, mean, std, weight, bias, bn_weight, bn_bias,
                                batch_stats, bn_eps)
        a, b = G.input_grad_coefficients(grads.mean, grads.std, std, hw, correction)
        dx = backend.input_grad(masked if masked is not None else grad_out, x, g, mean, a, b)
    empty = x.new_empty(_EMPTY_GRAD_SHAPE)
    return (dx, masked if masked is not None else empty, grads.weight,
            *(t if t is not None else weight.new_empty(_EMPTY_GRAD_SHAPE)
              for t in (grads.bias, grads.bn_weight, grads.bn_bias)))


@srm_backward.register_fake
def _(grad_out, x, out, weight, bias, bn_weight, bn_bias, mean, std, batch_stats, bn_eps,
      correction, eps):
    def like(t):
        return weight.new_empty(_EMPTY_GRAD_SHAPE) if t is None else torch.empty_like(t)
    dx = torch.empty_like(x, memory_format=passes.row_layout(x))
    d_identity = x.new_empty(_EMPTY_GRAD_SHAPE) if out is None else torch.empty_like(dx)
    return dx, d_identity, torch.empty_like(weight), like(bias), like(bn_weight), like(bn_bias)


@torch.library.custom_op("srm_models::srm_residual_inference_", mutates_args=("x",))
def srm_residual_inference_(x: Tensor, identity: Tensor, weight: Tensor, bias: Tensor,
                            correction: int, eps: float) -> None:
    """relu(x * g + identity) written over x, gate from a folded CFC: inference needs no copy.

    x must be contiguous or channels_last (so that the result lands in x's own memory).
    """
    backend = _backend(x, identity)
    correction = G.effective_correction(x.shape[2] * x.shape[3], correction)
    if backend is cpu_kernels:
        cpu_kernels.residual_inference_(x, identity, weight, bias, correction, eps)
        return
    with torch.autocast(x.device.type, enabled=False):
        mean, std = backend.style_stats(x, correction, eps, G.compute_dtype(x))
        g = G.gate_forward(mean, std, weight, bias, None, None, False, 0.0)
        backend.recalibrate(x, g, identity, inplace=True)


@srm_residual_inference_.register_fake
def _(x, identity, weight, bias, correction, eps):
    return None


def _setup_context(ctx, inputs, output):
    x, identity, weight, bias, bn_weight, bn_bias, batch_stats, bn_eps, correction, eps = inputs
    out, mean, std = output
    ctx.residual = identity is not None
    ctx.has = (bias is not None, bn_weight is not None, bn_bias is not None)
    ctx.config = (batch_stats, bn_eps, correction, eps)
    ctx.save_for_backward(x, out if ctx.residual else None, weight, bias, bn_weight, bn_bias,
                          mean, std)
    ctx.mark_non_differentiable(mean, std)


def _backward(ctx, grad_out, _grad_mean, _grad_std):
    x, out, weight, bias, bn_weight, bn_bias, mean, std = ctx.saved_tensors
    dx, d_identity, d_weight, *rest = srm_backward(grad_out, x, out, weight, bias, bn_weight,
                                                   bn_bias, mean, std, *ctx.config)
    d_bias, d_bn_weight, d_bn_bias = (t if has else None for t, has in zip(rest, ctx.has))
    return (dx, d_identity if ctx.residual else None, d_weight, d_bias, d_bn_weight, d_bn_bias,
            None, None, None, None)


srm_forward.register_autograd(_backward, setup_context=_setup_context)
