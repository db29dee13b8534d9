"""Squeeze-and-Excitation (Hu et al., 2018): global average pool, bottleneck MLP, sigmoid gate."""
from __future__ import annotations

import torch
from torch import nn

from .base import Recalibration


class SE(Recalibration):
    """SE block as compared in the SRM paper: reduction 16, biases in both fully connected layers.

    The two 1x1 convolutions act as the fully connected layers on the pooled (N, C, 1, 1) map,
    so no reshape is needed. With biases, SE-ResNet-50 has the 28.09M parameters of Table 1.
    """

    has_channel_gate = True

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"SE reduction={reduction!r} is not valid; use an integer >= 1")
        hidden = max(channels // reduction, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights of shape (N, C, 1, 1)."""
        return torch.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate(x)
        self.report_gate(gate)
        return x * gate
