"""CBAM (Woo et al., 2018): channel attention, then spatial attention, applied in sequence."""
from __future__ import annotations

import torch
from torch import nn

from .base import Recalibration


class ChannelAttention(nn.Module):
    """Average- and max-pooled descriptors through one shared MLP, summed, then a sigmoid."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"CBAM reduction={reduction!r} is not valid; use an integer >= 1")
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """Channel-wise mean and max maps, a k x k convolution with BN, then a sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"CBAM spatial_kernel_size={kernel_size!r} is not valid; use an odd integer >= 1")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(maps)))


class CBAM(Recalibration):
    """Convolutional Block Attention Module: a further baseline beside SE and GE.

    Unlike the other modules it also reweights positions, not only channels.
    """

    has_channel_gate = True  # the channel attention's gate; the spatial one weighs positions

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(spatial_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.channel(x)
        self.report_gate(gate)
        x = x * gate
        return x * self.spatial(x)
