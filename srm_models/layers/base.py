"""Common base of the recalibration modules."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Recalibration(nn.Module):
    """A module that maps a feature map to the same feature map reweighted per channel.

    Residual blocks call :meth:`forward_residual` instead of ``relu(module(x) + identity)``
    so that a module can fuse the multiply, the residual addition and the ReLU into one pass
    over memory (Fig. 2b of the SRM paper: recalibration sits on the residual branch).
    """

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        out = self(x)
        out += identity
        return F.relu(out, inplace=True)


class NoRecalibration(Recalibration):
    """The baseline: passes features through unchanged (the slot of a plain ResNet block)."""

    def __init__(self, channels: int | None = None, **_: object) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
