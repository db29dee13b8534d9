"""Common base of the recalibration modules."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.hooks import RemovableHandle

GateHook = Callable[["Recalibration", torch.Tensor], None]


class Recalibration(nn.Module):
    """A module that maps a feature map to the same feature map reweighted per channel.

    Residual blocks call :meth:`forward_residual` instead of ``relu(module(x) + identity)``
    so that a module can fuse the multiply, the residual addition and the ReLU into one pass
    over memory (Fig. 2b of the SRM paper: recalibration sits on the residual branch).

    A module that computes a per-channel gate sets ``has_channel_gate`` and hands the gate to
    :meth:`report_gate` in its forward; analyses (``srm_models.gates``) read it through
    :meth:`register_gate_hook`. While a gate hook is registered, a module with a fused path
    takes its plain path so that the gate exists as a tensor.
    """

    has_channel_gate = False

    def __init__(self) -> None:
        super().__init__()
        self._gate_hooks: OrderedDict[int, GateHook] = OrderedDict()

    def register_gate_hook(self, hook: GateHook) -> RemovableHandle:
        """Call ``hook(module, gate)`` with the (N, C) channel weights of every forward pass."""
        if not self.has_channel_gate:
            raise TypeError(f"{type(self).__name__} has no per-channel gate to observe")
        handle = RemovableHandle(self._gate_hooks)
        self._gate_hooks[handle.id] = hook
        return handle

    @property
    def gate_observed(self) -> bool:
        return bool(getattr(self, "_gate_hooks", None))

    def report_gate(self, gate: torch.Tensor) -> None:
        """Give the gate (N, C) or (N, C, 1, 1) to the registered hooks; free when there are none."""
        if self.gate_observed:
            flat = gate.reshape(gate.shape[0], gate.shape[1])
            for hook in list(self._gate_hooks.values()):
                hook(self, flat)

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
