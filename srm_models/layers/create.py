"""The factory that turns a recalibration kind ("none", "se", "ge", "srm", "cbam") into a module."""
from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..errors import InvalidArgumentError
from .base import NoRecalibration
from .cbam import CBAM
from .ge import GE
from .se import SE
from .srm import SRM

RECALIBRATIONS: dict[str, type[nn.Module]] = {
    "none": NoRecalibration,
    "se": SE,
    "ge": GE,
    "srm": SRM,
    "cbam": CBAM,
}

# Keywords a backbone supplies itself; a user of create_model does not pass them.
BACKBONE_SUPPLIED = ("channels", "feature_size")


def _check_kind(kind: str) -> type[nn.Module]:
    if kind not in RECALIBRATIONS:
        raise InvalidArgumentError(
            f"unknown recalibration kind {kind!r}; valid kinds: {', '.join(RECALIBRATIONS)}")
    return RECALIBRATIONS[kind]


def recalibration_arguments(kind: str) -> dict[str, object]:
    """The keywords a kind accepts beyond ``channels`` and ``feature_size``, with their defaults."""
    cls = _check_kind(kind)
    if cls is NoRecalibration:
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in params.items()
            if name != "self" and name not in BACKBONE_SUPPLIED
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def needs_feature_size(kind: str) -> bool:
    """Whether the module's parameters depend on the spatial size of its input (GE-θ does)."""
    cls = _check_kind(kind)
    return "feature_size" in inspect.signature(cls.__init__).parameters


def check_recalibration_kwargs(kind: str, kwargs: dict[str, object], where: str = "") -> None:
    """Reject keywords the kind does not take, naming the ones it does."""
    valid = recalibration_arguments(kind)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        listing = ", ".join(valid) if valid else "none"
        raise InvalidArgumentError(
            f"{where or kind!r} does not take {', '.join(map(repr, unknown))}; "
            f"the {kind!r} recalibration takes: {listing}")


def create_recalibration(kind: str, channels: int, **kwargs: object) -> nn.Module:
    """Build one recalibration module for a feature map with ``channels`` channels.

    ``kind`` is one of ``none``, ``se``, ``ge``, ``srm``, ``cbam``. GE-θ also needs
    ``feature_size`` (the height and width of the map it gates). Other keywords go to the
    module (``reduction`` for SE/CBAM, ``pooling``/``integration``/``unbiased_std`` for SRM);
    unknown keywords and bad values raise :class:`InvalidArgumentError`.
    """
    cls = _check_kind(kind)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise InvalidArgumentError(f"channels={channels!r} is not valid; give a positive int")
    feature_size = kwargs.pop("feature_size", None)
    check_recalibration_kwargs(kind, kwargs)
    if needs_feature_size(kind):
        if feature_size is None:
            raise InvalidArgumentError(
                f"the {kind!r} recalibration needs feature_size (height and width of its input map)")
        kwargs["feature_size"] = feature_size
    elif feature_size is not None and cls is not NoRecalibration:
        raise InvalidArgumentError(f"the {kind!r} recalibration does not take feature_size; only 'ge' does")
    try:
        return cls(channels, **kwargs)
    except (ValueError, TypeError) as err:
        raise InvalidArgumentError(f"bad argument for the {kind!r} recalibration: {err}") from err


def recalibration_builder(kind: str, **kwargs: object) -> Callable[[int, tuple[int, int]], nn.Module]:
    """A ``(channels, feature_size) -> module`` callable for backbones; checks keywords now.

    Backbones know each block's channels and map size; the user knows only the kind and its
    options. Building one module up front surfaces bad values before the network is built.
    """
    check_recalibration_kwargs(kind, kwargs)
    pass_size = needs_feature_size(kind)

    def build(channels: int, feature_size: tuple[int, int]) -> nn.Module:
        extra = {"feature_size": feature_size} if pass_size else {}
        return create_recalibration(kind, channels, **kwargs, **extra)

    build(16, (1, 1))
    return build
