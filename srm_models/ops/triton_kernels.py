"""Triton kernels for the fused SRM on CUDA: the same three passes as ``passes``, one kernel each.

Each kernel walks (n, channel-block) tiles through H*W with the input's own strides, so
contiguous and channels_last inputs need no copy; accumulation is in float32 whatever the
input dtype (fp16/bf16 under autocast cannot overflow a variance). Statistics are one pass:
per-tile mean and centred sum of squares merged with Chan's formula (Welford by blocks).
Runs on CPU tensors under ``TRITON_INTERPRET=1``, which is how the tests check it without a GPU.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

from .passes import row_layout

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.cache
def importable() -> bool:
    return triton is not None


def available(x: Tensor) -> bool:
    """Whether these kernels can run on ``x`` (Triton present, a dtype they accumulate well)."""
    return importable() and x.dtype in SUPPORTED_DTYPES


if triton is not None:

    @triton.jit
    def _stats_kernel(x_ptr, mean_ptr, std_ptr, C, HW, s_n, s_c, s_hw, denominator, eps,
                      BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
        n = tl.program_id(0)
        c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_ok = c < C
        base = x_ptr + n * s_n + c[:, None] * s_c
        mean = tl.zeros([BLOCK_C], dtype=tl.float32)
        m2 = tl.zeros([BLOCK_C], dtype=tl.float32)
        count = 0.0
        for start in range(0, HW, BLOCK_HW):
            hw = start + tl.arange(0, BLOCK_HW)
            mask = c_ok[:, None] & (hw < HW)[None, :]
            v = tl.load(base + hw[None, :] * s_hw, mask=mask, other=0.0).to(tl.float32)
            k = tl.minimum(HW - start, BLOCK_HW).to(tl.float32)
            block_mean = tl.sum(v, axis=1) / k
            d = tl.where(mask, v - block_mean[:, None], 0.0)
            block_m2 = tl.sum(d * d, axis=1)
            total = count + k
            delta = block_mean - mean
            mean += delta * (k / total)
            m2 += block_m2 + delta * delta * (count * k / total)
            count = total
        std = tl.sqrt(m2 / denominator + eps)
        tl.store(mean_ptr + n * C + c, mean, mask=c_ok)
        tl.store(std_ptr + n * C + c, std, mask=c_ok)

    @triton.jit
    def _apply_kernel(x_ptr, g_ptr, id_ptr, out_ptr, C, HW, s_n, s_c, s_hw, i_n, i_c, i_hw,
                      HAS_IDENTITY: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
        n = tl.program_id(0)
        c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
        mask = (c < C)[:, None] & (hw < HW)[None, :]
        offset = n * s_n + c[:, None] * s_c + hw[None, :] * s_hw
        x = tl.load(x_ptr + offset, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + n * C + c, mask=c < C, other=0.0)
        y = x * g[:, None]
        if HAS_IDENTITY:
            identity = tl.load(id_ptr + n * i_n + c[:, None] * i_c + hw[None, :] * i_hw,
                               mask=mask, other=0.0).to(tl.float32)
            y = tl.maximum(y + identity, 0.0)
        tl.store(out_ptr + offset, y.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _gate_grad_kernel(grad_ptr, x_ptr, out_ptr, masked_ptr, dg_ptr, C, HW, s_n, s_c, s_hw,
                          RESIDUAL: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
        n = tl.program_id(0)
        c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_ok = c < C
        acc = tl.zeros([BLOCK_C], dtype=tl.float32)
        for start in range(0, HW, BLOCK_HW):
            hw = start + tl.arange(0, BLOCK_HW)
            mask = c_ok[:, None] & (hw < HW)[None, :]
            offset = n * s_n + c[:, None] * s_c + hw[None, :] * s_hw
            grad = tl.load(grad_ptr + offset, mask=mask, other=0.0)
            if RESIDUAL:
                out = tl.load(out_ptr + offset, mask=mask, other=0.0)
                grad = tl.where(out > 0, grad, 0.0).to(grad.dtype)
                tl.store(masked_ptr + offset, grad, mask=mask)
            x = tl.load(x_ptr + offset, mask=mask, other=0.0).to(tl.float32)
            acc += tl.sum(grad.to(tl.float32) * x, axis=1)
        tl.store(dg_ptr + n * C + c, acc, mask=c_ok)

    @triton.jit
    def _input_grad_kernel(grad_ptr, x_ptr, g_ptr, mean_ptr, a_ptr, b_ptr, dx_ptr, C, HW, s_n, s_c, s_hw,
                           BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
        n = tl.program_id(0)
        c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
        mask = (c < C)[:, None] & (hw < HW)[None, :]
        offset = n * s_n + c[:, None] * s_c + hw[None, :] * s_hw
        grad = tl.load(grad_ptr + offset, mask=mask, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + offset, mask=mask, other=0.0).to(tl.float32)
        row = n * C + c
        g = tl.load(g_ptr + row, mask=c < C, other=0.0)
        mean = tl.load(mean_ptr + row, mask=c < C, other=0.0)
        a = tl.load(a_ptr + row, mask=c < C, other=0.0)
        b = tl.load(b_ptr + row, mask=c < C, other=0.0)
        dx = grad * g[:, None] + a[:, None] + b[:, None] * (x - mean[:, None])
        tl.store(dx_ptr + offset, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _blocks(c: int, hw: int) -> tuple[int, int]:
    return min(32, triton.next_power_of_2(c)), min(128, triton.next_power_of_2(hw))


def _strides(t: Tensor) -> tuple[int, int, int]:
    """(n, c, hw) strides; H and W flatten into one spatial axis in both supported layouts."""
    return t.stride(0), t.stride(1), t.stride(3)


def _dense(t: Tensor) -> Tensor:
    return t.contiguous(memory_format=row_layout(t))


def style_stats(x: Tensor, correction: int, eps: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    x = _dense(x)
    n, c, h, w = x.shape
    mean = torch.empty(n, c, dtype=torch.float32, device=x.device)
    std = torch.empty_like(mean)
    block_c, block_hw = _blocks(c, h * w)
    _stats_kernel[(n, triton.cdiv(c, block_c))](x, mean, std, c, h * w, *_strides(x),
                                                float(h * w - correction), float(eps),
                                                BLOCK_C=block_c, BLOCK_HW=block_hw)
    return mean.to(dtype), std.to(dtype)


def recalibrate(x: Tensor, gate: Tensor, identity: Optional[Tensor], inplace: bool = False) -> Tensor:
    x = _dense(x)
    n, c, h, w = x.shape
    out = x if inplace else torch.empty_like(x)  # each element is read before it is written
    ident = x if identity is None else identity
    block_c, block_hw = _blocks(c, h * w)
    grid = (n, triton.cdiv(c, block_c), triton.cdiv(h * w, block_hw))
    _apply_kernel[grid](x, gate.float().contiguous(), ident, out, c, h * w, *_strides(x),
                        *_strides(ident), HAS_IDENTITY=identity is not None,
                        BLOCK_C=block_c, BLOCK_HW=block_hw)
    return out


def gate_grad(grad_out: Tensor, x: Tensor, out: Optional[Tensor],
              dtype: torch.dtype) -> tuple[Tensor, Optional[Tensor]]:
    x = _dense(x)
    layout = row_layout(x)
    grad_out = grad_out.contiguous(memory_format=layout)
    n, c, h, w = x.shape
    masked = None
    if out is not None:
        out = out.contiguous(memory_format=layout)
        masked = torch.empty_like(grad_out)
    dg = torch.empty(n, c, dtype=torch.float32, device=x.device)
    block_c, block_hw = _blocks(c, h * w)
    _gate_grad_kernel[(n, triton.cdiv(c, block_c))](
        grad_out, x, out if out is not None else x, masked if masked is not None else x, dg,
        c, h * w, *_strides(x), RESIDUAL=out is not None, BLOCK_C=block_c, BLOCK_HW=block_hw)
    return dg.to(dtype), masked


def input_grad(grad: Tensor, x: Tensor, gate: Tensor, mean: Tensor, a: Tensor,
               b: Tensor) -> Tensor:
    x = _dense(x)
    grad = grad.contiguous(memory_format=row_layout(x))
    n, c, h, w = x.shape
    dx = torch.empty_like(x)
    block_c, block_hw = _blocks(c, h * w)
    grid = (n, triton.cdiv(c, block_c), triton.cdiv(h * w, block_hw))
    _input_grad_kernel[grid](grad, x, *(t.float().contiguous() for t in (gate, mean, a, b)), dx,
                             c, h * w, *_strides(x), BLOCK_C=block_c, BLOCK_HW=block_hw)
    return dx
