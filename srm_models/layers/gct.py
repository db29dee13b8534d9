"""Gated Channel Transformation (Yang et al., CVPR 2020): l2 embedding, channel normalisation, tanh gate."""
from __future__ import annotations

import torch
from torch import nn

from .base import Recalibration


class GCT(Recalibration):
    """GCT in the recalibration slot; 3 parameters per channel (α, γ, β).

    Per channel c of an (N, C, H, W) map, with ε = 1e-5 as in the paper's code:
    s_c = α_c (Σ_hw x² + ε)^½ (eq. 1), ŝ_c = √C s_c / (Σ_c s_c² + ε)^½ (eq. 2),
    x̂_c = x_c (1 + tanh(γ_c ŝ_c + β_c)) (eq. 3). α starts at 1, γ and β at 0, so a fresh
    GCT is the identity. (The paper also places GCT before every convolution; not done here.)
    """

    has_channel_gate = True

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"GCT eps={eps!r} is not valid; use a number > 0")
        self.channels, self.eps = channels, float(eps)
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights of shape (N, C, 1, 1), in (0, 2)."""
        embedding = self.alpha * (x.pow(2).sum(dim=(2, 3), keepdim=True) + self.eps).sqrt()
        normalised = self.channels ** 0.5 * embedding / (embedding.pow(2).sum(dim=1, keepdim=True)
                                                          + self.eps).sqrt()
        return 1.0 + torch.tanh(self.gamma * normalised + self.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate(x)
        self.report_gate(gate)
        return x * gate
