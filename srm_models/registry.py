"""Model names to constructors: ``create_model("srm_resnet50")``, ``list_models("*cifar*")``.

A name is ``[kind_]family{depth}``: kind any registered recalibration kind but ``none``
(``srm_models.recalibration_kinds()``, plugins included), nothing for the plain network;
family ``resnet`` (ImageNet, 18/34/50/101/152) or ``cifar_resnet`` (20/32/56/110).
Names are derived from the kinds registered at the time of asking, so a plugin's kind gets
its models as soon as it is registered.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from torch import nn

from .cifar_resnet import CifarResNet
from .errors import InvalidArgumentError, UnknownModelError
from .layers.create import recalibration_arguments
from .layers.kinds import NONE, canonical_kind, recalibration_kinds
from .resnet import RESNET_LAYOUTS, Bottleneck, resnet

CIFAR_DEPTHS = (20, 32, 56, 110)
FAMILIES = {"resnet": tuple(RESNET_LAYOUTS), "cifar_resnet": CIFAR_DEPTHS}


@dataclass(frozen=True)
class ModelEntry:
    """What a registered name stands for."""

    name: str
    family: str          # "resnet" or "cifar_resnet"
    depth: int
    recalibration: str   # a registered kind; "none" for the plain network

    @property
    def default_num_classes(self) -> int:
        return 1000 if self.family == "resnet" else 10

    @property
    def default_input_size(self) -> int:
        return 224 if self.family == "resnet" else 32


def model_name(kind: str, backbone: str) -> str:
    """``srm`` + ``resnet50`` -> ``srm_resnet50``; the plain network (``none`` or ``baseline``) keeps
    the backbone's name."""
    return backbone if canonical_kind(kind) == NONE else f"{kind}_{backbone}"


def backbones() -> list[str]:
    """The plain networks' names, sorted."""
    return sorted(f"{family}{depth}" for family, depths in FAMILIES.items() for depth in depths)


def models() -> dict[str, ModelEntry]:
    """Every model name for the kinds registered now."""
    entries = {}
    for family, depths in FAMILIES.items():
        for depth in depths:
            for kind in recalibration_kinds():
                name = model_name(kind, f"{family}{depth}")
                entries[name] = ModelEntry(name, family, depth, kind)
    return entries


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (all by default), sorted."""
    return sorted(name for name in models() if fnmatch.fnmatchcase(name, pattern))


def get_entry(name: str) -> ModelEntry:
    known = models()
    if name not in known:
        raise UnknownModelError(name, known)
    return known[name]


def _uses_bottleneck(entry: ModelEntry, block: str) -> bool:
    if entry.family == "resnet":
        return RESNET_LAYOUTS[entry.depth][0] is Bottleneck
    return block == "bottleneck"


def model_arguments(name: str, block: str = "bottleneck") -> dict[str, object]:
    """Keywords ``create_model(name, ...)`` accepts, with their defaults."""
    entry = get_entry(name)
    args: dict[str, object] = {"num_classes": entry.default_num_classes,
                               "input_size": entry.default_input_size, "in_chans": 3}
    if entry.family == "cifar_resnet":
        args["block"] = "bottleneck"
    if _uses_bottleneck(entry, block):
        args["stride_in_1x1"] = False
    args.update(recalibration_arguments(entry.recalibration))
    return args


def describe_model(name: str) -> dict[str, object]:
    """A JSON-friendly description of a registered model (for listings such as GET /models)."""
    entry = get_entry(name)
    return {"name": entry.name, "family": entry.family, "depth": entry.depth,
            "recalibration": entry.recalibration, "arguments": model_arguments(name)}


def _check_positive_int(name: str, model: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgumentError(f"{model}: {name}={value!r} is not valid; give a positive int")


def create_model(name: str, num_classes: int | None = None, **kwargs: object) -> nn.Module:
    """Build a registered model, freshly initialised.

    Args:
        name: a name from :func:`list_models`.
        num_classes: classifier outputs; default 1000 for ImageNet ResNets, 10 for CIFAR ones.
        **kwargs: ``input_size`` (int or (h, w); GE-θ sizes its kernels from it), ``in_chans``,
            ``stride_in_1x1`` (bottleneck nets only), ``block`` (CIFAR only: ``bottleneck`` or
            ``basic``), and the recalibration's own options, e.g. ``pooling="avg+max"`` for
            SRM or ``reduction=8`` for SE.

    Raises:
        UnknownModelError: the name is not registered (the message lists the valid names).
        InvalidArgumentError: a keyword the model does not take, or a bad value.
    """
    entry = get_entry(name)
    if num_classes is None:
        num_classes = entry.default_num_classes
    _check_positive_int("num_classes", name, num_classes)
    block = kwargs.get("block", "bottleneck")
    valid = model_arguments(name, block if isinstance(block, str) else "bottleneck")
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise InvalidArgumentError(
            f"{name} does not take {', '.join(map(repr, unknown))}; valid keywords: "
            f"num_classes, {', '.join(valid_name for valid_name in valid if valid_name != 'num_classes')}")
    common: dict[str, Any] = {key: kwargs.pop(key) for key in ("input_size", "in_chans", "stride_in_1x1", "block")
              if key in kwargs}
    if "in_chans" in common:
        _check_positive_int("in_chans", name, common["in_chans"])
    if "stride_in_1x1" in common and not isinstance(common["stride_in_1x1"], bool):
        raise InvalidArgumentError(f"{name}: stride_in_1x1={common['stride_in_1x1']!r} is not valid; "
                                   "give True or False")
    common.setdefault("input_size", entry.default_input_size)
    try:
        if entry.family == "resnet":
            return resnet(entry.depth, num_classes=num_classes, recalibration=entry.recalibration,
                          recalibration_kwargs=kwargs, **common)
        return CifarResNet(entry.depth, num_classes=num_classes, recalibration=entry.recalibration,
                           recalibration_kwargs=kwargs, **common)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"{name}: {err}") from err
    except (ValueError, TypeError) as err:
        raise InvalidArgumentError(f"{name}: {err}") from err
