"""The per-channel gates of a ResNet's recalibration modules, by the paper's block names.

Two analyses of Sec. 5 read them: recording every block's gate per image (the channel-weight
correlations of Figs. 7, 8 and 10) and pruning a stage's residual branches by them (Fig. 6).
Blocks are named ``conv{stage}_{block}`` as in the paper: the stem is conv1, so a ResNet's
first stage is conv2 and ResNet-56's sixth block there is ``conv2_6``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from .errors import InvalidArgumentError
from .layers.base import Recalibration

FIRST_STAGE = 2  # the paper's conv2: conv1 is the stem
PRUNE_ORDERS = ("gate", "random")


def _stages(model: nn.Module) -> list[nn.Module]:
    """The backbone's residual stages, ``layer1``, ``layer2``, ... in order."""
    stages, index = [], 1
    while isinstance(getattr(model, f"layer{index}", None), nn.Sequential):
        stages.append(getattr(model, f"layer{index}"))
        index += 1
    return stages


def gated_blocks(model: nn.Module) -> dict[str, Recalibration]:
    """Block name -> its recalibration module, for every block whose module has a channel gate."""
    found: dict[str, Recalibration] = {}
    for stage_index, stage in enumerate(_stages(model)):
        for block_index, block in enumerate(stage.children()):
            module = getattr(block, "recalibration", None)
            if isinstance(module, Recalibration) and module.has_channel_gate:
                found[f"conv{stage_index + FIRST_STAGE}_{block_index + 1}"] = module
    return found


def gated_stages(model: nn.Module) -> dict[int, list[str]]:
    """Stage number (2, 3, ...) -> the names of its gated blocks; stages without gates left out."""
    stages: dict[int, list[str]] = {}
    for name in gated_blocks(model):
        stages.setdefault(int(name[4:].split("_")[0]), []).append(name)
    return stages


def pruned_count(ratio: float, channels: int) -> int:
    """How many of ``channels`` a prune ratio zeroes: the nearest whole number (0.1 of 64 is 6)."""
    if not 0.0 <= ratio <= 1.0:
        raise InvalidArgumentError(f"prune ratio={ratio!r} is not valid; give a number in [0, 1]")
    return min(channels, int(math.floor(ratio * channels + 0.5)))


@contextmanager
def record_gates(model: nn.Module, names: list[str] | None = None) -> Iterator[dict[str, list[torch.Tensor]]]:
    """While the block lasts, every forward appends each block's (N, C) gate (float, CPU) to its list."""
    blocks = gated_blocks(model)
    unknown = sorted(set(names or ()) - set(blocks))
    if unknown:
        raise InvalidArgumentError(f"unknown block(s) {', '.join(unknown)}; valid blocks: {', '.join(blocks)}")
    recorded: dict[str, list[torch.Tensor]] = {name: [] for name in (names or blocks)}

    def keep(name: str):
        return lambda module, gate: recorded[name].append(gate.detach().float().cpu())

    handles = [blocks[name].register_gate_hook(keep(name)) for name in recorded]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


def _prune_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """(N, C) ones with each row's ``count`` lowest-scoring channels zeroed."""
    mask = torch.ones_like(scores)
    if count:
        lowest = scores.argsort(dim=1, stable=True)[:, :count]
        mask.scatter_(1, lowest, 0.0)
    return mask


@contextmanager
def prune_stage(model: nn.Module, stage: int, ratio: float, order: Literal["gate", "random"] = "gate",
                generator: torch.Generator | None = None) -> Iterator[None]:
    """Zero, per image, the ``ratio`` fraction of each gated block's recalibrated residual channels in
    ``stage`` before the shortcut is added: those with the lowest gate (``order="gate"``, Fig. 6) or a
    random choice (``order="random"``, the control; ``generator`` seeds it). At ratio 1 each block
    passes only its shortcut. Other stages are untouched.
    """
    if order not in PRUNE_ORDERS:
        raise InvalidArgumentError(f"prune order={order!r} is not valid; choose one of {', '.join(PRUNE_ORDERS)}")
    stages = gated_stages(model)
    if stage not in stages:
        raise InvalidArgumentError(f"stage={stage!r} has no gated blocks; valid stages: "
                                   f"{', '.join(map(str, stages)) or 'none'}")
    blocks = gated_blocks(model)
    handles = []
    for name in stages[stage]:
        module = blocks[name]
        last_gate: dict[str, torch.Tensor] = {}

        def remember(module, gate, last_gate=last_gate):
            last_gate["gate"] = gate

        def zero_lowest(module, inputs, output, last_gate=last_gate):
            gate = last_gate.pop("gate")
            count = pruned_count(ratio, gate.shape[1])
            scores = gate if order == "gate" else torch.rand(gate.shape, generator=generator)
            mask = _prune_mask(scores.float(), count).to(device=output.device, dtype=output.dtype)
            return output * mask[:, :, None, None]

        # The gate hook also keeps modules with a fused tail on the path that calls forward hooks.
        handles += [module.register_gate_hook(remember), module.register_forward_hook(zero_lowest)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
