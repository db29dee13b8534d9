"""The optimizer's parameter groups: which tensors get weight decay (a protocol's ``no_weight_decay``).

The SRM authors' released ImageNet script puts SRM's parameters in a group without weight
decay (their imagenet.py; confirmed in implus/PytorchInsight#3). The rules:

- ``none``: every parameter decays;
- ``srm``: SRM modules' own parameters (CFC and BN for the paper's SRM) do not; everything
  else decays, SE and GE included: what the authors' script did;
- ``recalibration``: the parameters of whatever module sits in the recalibration slot;
- ``recalibration+norm+bias``: those, plus every normalisation layer's parameters and every bias.
"""
from __future__ import annotations

import torch
from torch import nn

from .protocols import NO_WEIGHT_DECAY

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def no_decay_names(model: nn.Module, rule: str) -> set[str]:
    """Names (as in ``model.named_parameters()``) of the parameters the rule exempts from decay."""
    from srm_models import SRM, Recalibration

    if rule not in NO_WEIGHT_DECAY:
        raise ValueError(f"no_weight_decay={rule!r} is not valid; choose one of {', '.join(NO_WEIGHT_DECAY)}")
    if rule == "none":
        return set()
    slot = SRM if rule == "srm" else Recalibration
    names = {_join(prefix, name) for prefix, module in model.named_modules() if isinstance(module, slot)
             for name, _ in module.named_parameters()}
    if rule == "recalibration+norm+bias":
        names |= {_join(prefix, name) for prefix, module in model.named_modules()
                  if isinstance(module, NORM_LAYERS) for name, _ in module.named_parameters(recurse=False)}
        names |= {name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"}
    return names


def parameter_groups(model: nn.Module, weight_decay: float, rule: str) -> list[dict]:
    """SGD parameter groups: ``decay`` (``weight_decay``) and, when the rule exempts any, ``no_decay`` (0)."""
    exempt = no_decay_names(model, rule)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"name": "decay", "weight_decay": weight_decay,
               "params": [p for name, p in named if name not in exempt]}]
    if exempt:
        groups.append({"name": "no_decay", "weight_decay": 0.0,
                       "params": [p for name, p in named if name in exempt]})
    return groups


def describe_groups(optimizer: torch.optim.Optimizer) -> dict[str, dict]:
    """Per group: its weight decay, how many tensors and how many scalars it holds (for the trial result)."""
    return {group.get("name", str(index)): {"weight_decay": group["weight_decay"], "tensors": len(group["params"]),
                                            "params": sum(p.numel() for p in group["params"])}
            for index, group in enumerate(optimizer.param_groups)}
