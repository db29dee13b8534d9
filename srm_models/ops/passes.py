"""The big passes over the feature map, built from a few large torch ops (any device).

On the CPU each pass walks the tensor in cache-sized chunks: a chunk is read from memory once,
and the temporaries it needs (x - mean, grad * x) stay in the L2 cache instead of becoming new
full-size tensors, whose page faults cost more here than the arithmetic. Other devices take the
whole tensor as one chunk.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 18  # 1 MiB of float32: a chunk plus its scratch stay in the 2 MiB L2


def row_layout(x: Tensor) -> torch.memory_format:
    """The layout whose rows view needs no copy: contiguous or channels_last."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def rows(x: Tensor, layout: torch.memory_format) -> tuple[Tensor, int]:
    """A dense view of x whose leading dim can be cut into chunks, and its spatial dim.

    Contiguous: (N*C, HW), one row per (n, c). Channels_last: (N, HW, C), one slab per sample.
    Per-(n, c) values are shaped to match with ``per_row``.
    """
    n, c, h, w = x.shape
    x = x.contiguous(memory_format=layout)
    if layout == torch.channels_last:
        return x.permute(0, 2, 3, 1).reshape(n, h * w, c), 1
    return x.view(n * c, h * w), 1


def per_row(s: Tensor, v: Tensor) -> Tensor:
    """Per-(n, c) values (N, C) as a view that broadcasts against the rows view ``v``."""
    return s.reshape(-1, 1) if v.dim() == 2 else s.unsqueeze(1)


def _chunks(v: Tensor) -> Iterator[slice]:
    """Slices of the leading dim covering about CHUNK_ELEMENTS elements each (one on GPUs)."""
    if v.device.type != "cpu":
        yield slice(None)
        return
    step = max(CHUNK_ELEMENTS // max(v[0].numel(), 1), 1)
    for start in range(0, v.shape[0], step):
        yield slice(start, start + step)


def _scratch(buf: Optional[Tensor], like: Tensor, dtype: torch.dtype) -> Tensor:
    if buf is None or buf.shape != like.shape:
        return torch.empty(like.shape, dtype=dtype, device=like.device)
    return buf


def style_stats(x: Tensor, correction: int, eps: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per-(n, c) mean and sqrt(var + eps), reading x from memory once.

    The variance is the centred sum of squares of each chunk, formed while the chunk sits in
    cache: two-pass accuracy (no E[x^2] - E[x]^2 cancellation) at one pass's memory traffic.
    """
    v, dim = rows(x, row_layout(x))
    hw = x.shape[2] * x.shape[3]
    mean = torch.empty(x.shape[:2], dtype=dtype, device=x.device)
    m2 = torch.empty_like(mean)
    mean_v, m2_v = per_row(mean, v), per_row(m2, v)
    buf = None
    for part in _chunks(v):
        chunk = v[part]
        chunk_mean = mean_v[part]
        torch.mean(chunk, dim, keepdim=True, dtype=dtype, out=chunk_mean)
        buf = _scratch(buf, chunk, dtype)
        torch.sub(chunk, chunk_mean, out=buf)
        torch.sum(buf.square_(), dim, keepdim=True, out=m2_v[part])
    return mean, m2.div_(hw - correction).add_(eps).sqrt_()


def _like_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    out = torch.empty_like(x, memory_format=row_layout(x))
    return out, rows(out, row_layout(out))[0]


def recalibrate(x: Tensor, gate: Tensor, identity: Optional[Tensor], inplace: bool = False) -> Tensor:
    """x * g, or relu(x * g + identity) for a residual block, in one pass.

    ``inplace`` writes the result over x (inference, where nothing needs x afterwards).
    """
    layout = row_layout(x)
    xv, _ = rows(x, layout)
    out, ov = (x, xv) if inplace else _like_rows(x)
    g = per_row(gate, xv)
    if identity is None:
        torch.mul(xv, g, out=ov)
        return out
    iv, _ = rows(identity, layout)
    for part in _chunks(xv):
        torch.addcmul(iv[part], xv[part], g[part], out=ov[part]).relu_()
    return out


def gate_grad(grad_out: Tensor, x: Tensor, out: Optional[Tensor],
              dtype: torch.dtype) -> tuple[Tensor, Optional[Tensor]]:
    """dL/dg = sum_hw(grad * x) per (n, c); with ``out`` (residual) grad is first masked by ReLU.

    Returns (dL/dg, the masked gradient) -- the latter is also the identity's gradient.
    """
    layout = row_layout(x)
    xv, dim = rows(x, layout)
    gv, _ = rows(grad_out, layout)
    grad_gate = torch.empty(x.shape[:2], dtype=dtype, device=x.device)
    grad_gate_v = per_row(grad_gate, xv)
    masked = masked_v = ov = None
    if out is not None:
        ov, _ = rows(out, layout)
        masked, masked_v = _like_rows(x)
    buf = None
    for part in _chunks(xv):
        g = gv[part]
        if out is not None:
            g = torch.ops.aten.threshold_backward.grad_input(g, ov[part], 0,
                                                             grad_input=masked_v[part])
        buf = _scratch(buf, g, dtype)
        torch.sum(torch.mul(g, xv[part], out=buf), dim, keepdim=True, out=grad_gate_v[part])
    return grad_gate, masked


def input_grad(grad: Tensor, x: Tensor, gate: Tensor, mean: Tensor, a: Tensor,
               b: Tensor) -> Tensor:
    """dL/dx = grad * g + a + b * (x - mean), per (n, c) coefficients, one write of the result."""
    layout = row_layout(x)
    xv, _ = rows(x, layout)
    gv, _ = rows(grad, layout)
    dx, dv = _like_rows(x)
    g, mean, a, b = (per_row(t, xv) for t in (gate, mean, a, b))
    buf = None
    for part in _chunks(xv):
        buf = _scratch(buf, xv[part], a.dtype)
        centred = torch.sub(xv[part], mean[part], out=buf)
        torch.addcmul(a[part], gv[part], g[part], out=dv[part]).addcmul_(centred, b[part])
    return dx
