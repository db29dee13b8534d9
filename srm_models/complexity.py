"""Parameter and multiply-accumulate counts, the way Table 1 of the SRM paper reports them.

What is counted, per image:

- ``params``: trainable parameters (``requires_grad``). BN running statistics are buffers and do
  not count; this is what gives SRM-ResNet-50 its 25.62M (CFC 2C + BN affine 2C per block).
- ``macs``: multiply-accumulates of every ``nn.Conv2d`` (output elements x in_channels/groups x
  kernel area; biases not counted) and ``nn.Linear`` (output elements x in_features), plus one
  addition per output element of each residual block's shortcut addition. Not counted: BN,
  activations, pooling, the recalibration gates' element-wise products and SRM's style
  pooling/CFC (tensor arithmetic outside Conv2d/Linear).

Why forward hooks rather than ``torch.utils.flop_counter.FlopCounterMode``: the paper's numbers
include the shortcut additions, which FlopCounterMode ignores (it counts only matmul-like ops;
it gives 7.57 G for ResNet-101 where the paper says 7.58). With the additions the counts match
Table 1 and the SE paper: ResNet-50/101/152 = 3.86/7.58/11.30 GMACs with the stride on the
bottleneck's first 1x1, and 4.09 GMACs for ResNet-50 with torchvision's stride on the 3x3.
Hooks also give a per-kind breakdown and run on ``torch.device("meta")`` models for free.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import InvalidArgumentError
from .resnet import BasicBlock, Bottleneck

RESIDUAL_BLOCKS = (BasicBlock, Bottleneck)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _pass_through(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass(frozen=True)
class Complexity:
    """Trainable parameters and multiply-accumulates per image (see the module docstring)."""

    params: int
    macs: int
    input_size: tuple[int, int, int]
    breakdown: dict[str, int] = field(default_factory=dict)   # conv, linear, residual_add

    @property
    def params_m(self) -> float:
        """Parameters in millions, as the paper's tables print them."""
        return self.params / 1e6

    @property
    def gmacs(self) -> float:
        """Multiply-accumulates in billions (the paper's "GFLOPs" column)."""
        return self.macs / 1e9

    def to_dict(self) -> dict[str, object]:
        return {"params": self.params, "macs": self.macs, "input_size": list(self.input_size),
                "breakdown": dict(self.breakdown)}


def count_params(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _input_channels(model: nn.Module) -> int:
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return first_conv.in_channels if first_conv is not None else 3


def _image_shape(model: nn.Module, input_size: int | Sequence[int] | None) -> tuple[int, int, int]:
    if input_size is None:
        input_size = getattr(model, "input_size", None)
        if input_size is None:
            raise InvalidArgumentError("input_size is needed for a model that does not record one; "
                                       "give an int, (height, width) or (channels, height, width)")
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    size = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else None
    if size is None or len(size) not in (2, 3, 4) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise InvalidArgumentError(
            f"input_size={input_size!r} is not valid; give an int, (height, width), "
            "(channels, height, width) or (batch, channels, height, width) of positive ints")
    if len(size) == 2:
        return (_input_channels(model), *size)
    return tuple(size[-3:])


def count_macs(model: nn.Module, image_shape: tuple[int, int, int]) -> dict[str, int]:
    """Run one image through ``model`` (in eval mode, no grad) and count its operations by kind."""
    counts = {"conv": 0, "linear": 0, "residual_add": 0}

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            counts["conv"] += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            counts["linear"] += output.numel() * module.in_features
        else:
            counts["residual_add"] += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, *RESIDUAL_BLOCKS))]
    # BN is not counted and keeps its input's shape; on meta tensors its decomposition into
    # Python reference ops took ~80% of a count, so norm layers pass their input through here.
    norms = [m for m in model.modules() if isinstance(m, NORM_LAYERS)]
    for norm in norms:
        norm.forward = _pass_through  # type: ignore[method-assign,assignment]  # restored below
    was_training = model.training
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *image_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
        for norm in norms:
            del norm.forward
    return counts


def complexity(model: nn.Module, input_size: int | Sequence[int] | None = None) -> Complexity:
    """Parameters and MACs of ``model`` for one image of ``input_size``.

    ``input_size``: an int (square), ``(h, w)``, ``(c, h, w)`` or ``(n, c, h, w)`` (the batch is
    ignored: counts are per image); defaults to the size the model was built for. Build the
    model under ``torch.device("meta")`` to count without allocating or computing anything.
    """
    shape = _image_shape(model, input_size)
    breakdown = count_macs(model, shape)
    return Complexity(params=count_params(model), macs=sum(breakdown.values()),
                      input_size=shape, breakdown=breakdown)
