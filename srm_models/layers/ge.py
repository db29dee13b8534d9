"""Gather-Excite GE-θ (Hu et al., 2018) with a global extent, the variant the SRM paper compares."""
from __future__ import annotations

import torch
from torch import nn

from ..shapes import as_pair
from .base import Recalibration


class GE(Recalibration):
    """GE-θ: a depth-wise convolution whose kernel covers the whole feature map, BN, sigmoid.

    The gather step is learned per channel (C x H x W weights plus a bias), so the module must
    know the spatial size of the map it sees: ``feature_size``. Its parameters grow with the
    map, which is why GE-ResNet-50 has 31.12M parameters in Table 1 (5.56M more than ResNet-50).
    """

    has_channel_gate = True

    def __init__(self, channels: int, feature_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.feature_size = as_pair(feature_size)
        self.gather = nn.Conv2d(channels, channels, kernel_size=self.feature_size,
                                groups=channels, bias=True)
        self.bn = nn.BatchNorm2d(channels)

    def extra_repr(self) -> str:
        return f"feature_size={self.feature_size}"

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights of shape (N, C, 1, 1)."""
        if x.shape[-2] != self.feature_size[0] or x.shape[-1] != self.feature_size[1]:
            raise ValueError(
                f"GE was built for {self.feature_size[0]}x{self.feature_size[1]} feature maps but got "
                f"{x.shape[-2]}x{x.shape[-1]}; build the model with the input_size you feed it")
        return torch.sigmoid(self.bn(self.gather(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate(x)
        self.report_gate(gate)
        return x * gate
