"""SimAM (Yang et al., ICML 2021): a parameter-free attention weight per neuron from an energy function."""
from __future__ import annotations

import torch

from .base import Recalibration


class SimAM(Recalibration):
    """x * sigmoid(1 / e*), where e* is each neuron's minimal energy within its channel.

    With d = (x - μ)², σ² = Σ_hw d / (H·W - 1) and λ = ``e_lambda`` (1e-4, the paper's value),
    1 / e* = d / (4 (σ² + λ)) + 1/2 (eq. 6 inverted, as in the authors' code). No parameters.
    """

    def __init__(self, channels: int | None = None, e_lambda: float = 1e-4) -> None:
        super().__init__()
        if not e_lambda > 0:
            raise ValueError(f"SimAM e_lambda={e_lambda!r} is not valid; use a number > 0")
        self.e_lambda = float(e_lambda)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights of the input's shape, in (0.5, 1)."""
        others = max(x.shape[2] * x.shape[3] - 1, 1)  # a 1x1 map: d = 0, weight sigmoid(1/2)
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        variance = d.sum(dim=(2, 3), keepdim=True) / others
        return torch.sigmoid(d / (4 * (variance + self.e_lambda)) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)
