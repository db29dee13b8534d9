"""A user's module, outside srm_models: a learned per-channel gate sigmoid(w) * x, registered as 'scalegate'."""
from __future__ import annotations

import torch
from torch import nn

import srm_models

__version__ = "0.3.1"


class ScaleGate(srm_models.Recalibration):
    """One weight per channel; ``init`` sets its start (0: every channel gated by 1/2)."""

    def __init__(self, channels: int, init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, channels, 1, 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.weight)


srm_models.register_recalibration("scalegate", ScaleGate, description="a learned sigmoid scale per channel")
