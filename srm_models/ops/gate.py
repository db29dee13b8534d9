"""SRM's per-(N, C) middle: style integration and the sigmoid gate, with its closed-form gradient.

These tensors are tiny (N x C); the big passes over the feature map live in ``passes`` (CPU)
and ``triton_kernels`` (CUDA). Forward and backward are written out by hand so that the fused
op owns the whole gradient and keeps nothing but x and the per-(N, C) statistics alive.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor


def compute_dtype(x: Tensor) -> torch.dtype:
    """Statistics and the gate run in float32, or float64 when the input is float64."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def effective_correction(hw: int, correction: int) -> int:
    """Bessel's correction, except on a 1x1 map: one value has spread 0, not an undefined one."""
    return correction if hw > correction else 0


class GateGrads(NamedTuple):
    mean: Tensor
    std: Tensor
    weight: Tensor
    bias: Optional[Tensor]
    bn_weight: Optional[Tensor]
    bn_bias: Optional[Tensor]


def _cast(t: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    return None if t is None else t.to(dtype)


def _batch_normalize(z: Tensor, bn_eps: float) -> tuple[Tensor, Tensor]:
    """Normalise z over the batch (eqs. 5-7 without the affine part); returns (z_hat, 1/sigma)."""
    var, mu = torch.var_mean(z, dim=0, correction=0)
    rstd = torch.rsqrt(var + bn_eps)
    return (z - mu) * rstd, rstd


def gate_logits(mean: Tensor, std: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """CFC, eq. (4): z_nc = w_c . [mu_nc, sigma_nc] (+ b_c in the folded / bias-only form)."""
    z = mean * weight[:, 0] + std * weight[:, 1]
    return z if bias is None else z + bias


def gate_forward(mean: Tensor, std: Tensor, weight: Tensor, bias: Optional[Tensor],
                 bn_weight: Optional[Tensor], bn_bias: Optional[Tensor], batch_stats: bool,
                 bn_eps: float) -> Tensor:
    """Gate G (N, C), eqs. (4)-(8); ``batch_stats`` normalises z over the batch (training BN)."""
    dtype = mean.dtype
    z = gate_logits(mean, std, weight.to(dtype), _cast(bias, dtype))
    if batch_stats:
        z, _ = _batch_normalize(z, bn_eps)
        if bn_weight is not None:
            z = z * bn_weight.to(dtype)
        if bn_bias is not None:
            z = z + bn_bias.to(dtype)
    return torch.sigmoid(z)


def gate_backward(grad_gate: Tensor, mean: Tensor, std: Tensor, weight: Tensor,
                  bias: Optional[Tensor], bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
                  batch_stats: bool, bn_eps: float) -> GateGrads:
    """Gradients of the gate with respect to the statistics and the parameters (closed form)."""
    dtype = mean.dtype
    w = weight.to(dtype)
    z = gate_logits(mean, std, w, _cast(bias, dtype))
    d_bn_weight = d_bn_bias = None
    if batch_stats:
        z_hat, rstd = _batch_normalize(z, bn_eps)
        logits = z_hat
        if bn_weight is not None:
            logits = logits * bn_weight.to(dtype)
        if bn_bias is not None:
            logits = logits + bn_bias.to(dtype)
        g = torch.sigmoid(logits)
        d_logits = grad_gate * g * (1 - g)
        if bn_weight is not None:
            d_bn_weight = (d_logits * z_hat).sum(0).to(bn_weight.dtype)
        if bn_bias is not None:
            d_bn_bias = d_logits.sum(0).to(bn_bias.dtype)
        d_zhat = d_logits if bn_weight is None else d_logits * bn_weight.to(dtype)
        d_z = rstd * (d_zhat - d_zhat.mean(0) - z_hat * (d_zhat * z_hat).mean(0))
    else:
        g = torch.sigmoid(z)
        d_z = grad_gate * g * (1 - g)
    d_weight = torch.stack(((d_z * mean).sum(0), (d_z * std).sum(0)), dim=1).to(weight.dtype)
    d_bias = None if bias is None else d_z.sum(0).to(bias.dtype)
    return GateGrads(d_z * w[:, 0], d_z * w[:, 1], d_weight, d_bias, d_bn_weight, d_bn_bias)


def input_grad_coefficients(d_mean: Tensor, d_std: Tensor, std: Tensor, hw: int,
                            correction: int) -> tuple[Tensor, Tensor]:
    """(a, b) such that the statistics' share of dL/dx is ``a + b * (x - mean)`` per (n, c).

    d mean/dx = 1/HW; d std/dx = (x - mean) / (std * (HW - correction)), with std = sqrt(var + eps).
    Centring x (rather than folding -b * mean into a) avoids cancellation where std << |mean|.
    """
    return d_mean / hw, d_std / (std * (hw - correction))
