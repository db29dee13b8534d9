"""Style-based Recalibration Module (SRM), with the pooling and integration ablations."""
from __future__ import annotations

import torch
from torch import nn

from .base import Recalibration

POOLINGS = ("avg+std", "avg", "std", "max", "avg+max")
INTEGRATIONS = ("cfc+bn", "cfc", "mlp", "mlp+bn")


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"SRM {name}={value!r} is not valid; choose one of {', '.join(valid)}")
    return value


def style_pool(x: torch.Tensor, pooling: str = "avg+std", *, unbiased: bool = True,
               eps: float = 1e-5) -> torch.Tensor:
    """Per-channel style features T of shape (N, C, d), eqs. (1)-(3).

    The standard deviation is ``sqrt(var + eps)``; with ``unbiased`` the variance divides by
    ``H*W - 1``, except on a 1x1 map where it is 0 (one value has no spread, not an undefined one).
    """
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    features = []
    for part in pooling.split("+"):
        if part == "avg":
            features.append(flat.mean(dim=2))
        elif part == "std":
            correction = 1 if (unbiased and flat.shape[2] > 1) else 0
            var = flat.var(dim=2, correction=correction)
            features.append((var + eps).sqrt())
        elif part == "max":
            features.append(flat.amax(dim=2))
    return torch.stack(features, dim=2)


class SRM(Recalibration):
    """Style-based recalibration: style pooling, channel-wise integration, sigmoid gate, x * g.

    Args:
        channels: number of channels C of the input.
        pooling: style features per channel: ``avg+std`` (the paper's SRM), or an ablation of
            Table 6: ``avg``, ``std``, ``max``, ``avg+max``.
        integration: ``cfc+bn`` (the paper's SRM), or an ablation of Table 7: ``cfc`` (with a
            bias, since no BN absorbs it), ``mlp`` / ``mlp+bn`` (SE's two-layer MLP, reduction
            ``reduction``, over the style features concatenated along the channel axis).
        unbiased_std: eq. (2) divides by H*W; the authors' released code (which produced the
            published numbers) uses ``Tensor.var``'s unbiased H*W-1. We default to the released
            code so that trained results are comparable to the paper's tables.
        eps: added to the variance before the square root, as in the released code; keeps the
            gradient of the std finite on constant feature maps.

    The CFC weights start at zero, as in the authors' code: every gate starts at sigmoid(BN(0)).
    """

    def __init__(self, channels: int, pooling: str = "avg+std", integration: str = "cfc+bn",
                 unbiased_std: bool = True, eps: float = 1e-5, reduction: int = 16) -> None:
        super().__init__()
        self.channels = channels
        self.pooling = _check_choice("pooling", pooling, POOLINGS)
        self.integration = _check_choice("integration", integration, INTEGRATIONS)
        self.unbiased_std = unbiased_std
        self.eps = eps
        d = len(pooling.split("+"))
        uses_bn = integration.endswith("+bn")
        if integration.startswith("cfc"):
            self.cfc = nn.Parameter(torch.zeros(channels, d))
            self.bias = None if uses_bn else nn.Parameter(torch.zeros(channels))
            self.mlp = None
        else:
            self.cfc = None
            self.bias = None
            hidden = max(channels // reduction, 1)
            self.mlp = nn.Sequential(nn.Linear(d * channels, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, channels))
        self.bn = nn.BatchNorm1d(channels) if uses_bn else None

    def extra_repr(self) -> str:
        return (f"{self.channels}, pooling={self.pooling!r}, integration={self.integration!r}, "
                f"unbiased_std={self.unbiased_std}")

    def style_integrate(self, t: torch.Tensor) -> torch.Tensor:
        """Style features (N, C, d) to gate logits (N, C): eqs. (4)-(7)."""
        if self.cfc is not None:
            z = (t * self.cfc).sum(dim=2)
            if self.bias is not None:
                z = z + self.bias
        else:
            z = self.mlp(t.transpose(1, 2).reshape(t.shape[0], -1))
        return self.bn(z) if self.bn is not None else z

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights G of shape (N, C), eq. (8)."""
        t = style_pool(x, self.pooling, unbiased=self.unbiased_std, eps=self.eps)
        return torch.sigmoid(self.style_integrate(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)
        return x * g[:, :, None, None].to(x.dtype)
