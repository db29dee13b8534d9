"""Efficient Channel Attention (Wang et al., CVPR 2020): a 1-D convolution across pooled channels."""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import Recalibration


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size: t = int(|(log2 C + b) / γ|), the nearest odd number at or above t."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(Recalibration):
    """Global average pool, 1-D convolution (no bias) over the C pooled values, sigmoid, x * g.

    ``kernel_size`` None (the default) derives k from C with γ=2, b=1 as the paper does:
    k = 5 for 256, 512 and 1024 channels, 7 for 2048. The convolution has k weights per module.
    """

    has_channel_gate = True

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        if gamma < 1:
            raise ValueError(f"ECA gamma={gamma!r} is not valid; use an integer >= 1")
        k = eca_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k % 2 == 0:
            raise ValueError(f"ECA kernel_size={k!r} is not valid; use an odd integer >= 1 (or None: adaptive)")
        self.kernel_size = k
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights of shape (N, C, 1, 1)."""
        pooled = x.mean(dim=(2, 3)).unsqueeze(1)          # (N, 1, C): channels as a 1-D sequence
        return torch.sigmoid(self.conv(pooled)).transpose(1, 2).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate(x)
        self.report_gate(gate)
        return x * gate
