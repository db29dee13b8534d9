"""The factory that turns a registered recalibration kind into a module (see ``kinds.py``)."""
from __future__ import annotations

import inspect
from collections.abc import Callable

from ..errors import InvalidArgumentError
from .base import Recalibration
from .kinds import get_kind, recalibration_kinds

# Keywords a backbone supplies itself; a user of create_model does not pass them.
BACKBONE_SUPPLIED = ("channels", "feature_size")


def recalibration_arguments(kind: str) -> dict[str, object]:
    """The keywords a kind accepts beyond ``channels`` and ``feature_size``, with their defaults."""
    params = inspect.signature(get_kind(kind).cls.__init__).parameters
    return {name: p.default for name, p in params.items()
            if name != "self" and name not in BACKBONE_SUPPLIED
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def needs_feature_size(kind: str) -> bool:
    """Whether the module's parameters depend on the spatial size of its input (GE-θ's do)."""
    return get_kind(kind).needs_feature_size


def check_recalibration_kwargs(kind: str, kwargs: dict[str, object], where: str = "") -> None:
    """Reject keywords the kind does not take, naming the ones it does."""
    valid = recalibration_arguments(kind)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        listing = ", ".join(valid) if valid else "none"
        raise InvalidArgumentError(
            f"{where or kind!r} does not take {', '.join(map(repr, unknown))}; "
            f"the {kind!r} recalibration takes: {listing}")


def create_recalibration(kind: str, channels: int, **kwargs: object) -> Recalibration:
    """Build one recalibration module for a feature map with ``channels`` channels.

    ``kind`` is a registered kind (``srm_models.recalibration_kinds()``). Kinds registered with
    ``needs_feature_size`` (GE-θ) also need ``feature_size``, the height and width of the map
    they gate. Other keywords go to the module (``reduction`` for SE/CBAM, ``pooling`` for
    SRM, ...); unknown keywords and bad values raise :class:`InvalidArgumentError`.
    """
    registered = get_kind(kind)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise InvalidArgumentError(f"channels={channels!r} is not valid; give a positive int")
    feature_size = kwargs.pop("feature_size", None)
    check_recalibration_kwargs(kind, kwargs)
    if registered.needs_feature_size:
        if feature_size is None:
            raise InvalidArgumentError(
                f"the {kind!r} recalibration needs feature_size (height and width of its input map)")
        kwargs["feature_size"] = feature_size
    elif feature_size is not None:
        sized = [name for name, k in recalibration_kinds().items() if k.needs_feature_size]
        raise InvalidArgumentError(f"the {kind!r} recalibration does not take feature_size; only "
                                   f"{', '.join(map(repr, sized))} take it")
    try:
        factory: Callable[..., Recalibration] = registered.cls  # subclasses take (channels, **options)
        return factory(channels, **kwargs)
    except (ValueError, TypeError) as err:
        raise InvalidArgumentError(f"bad argument for the {kind!r} recalibration: {err}") from err


def recalibration_builder(kind: str, **kwargs: object) -> Callable[[int, tuple[int, int]], Recalibration]:
    """A ``(channels, feature_size) -> module`` callable for backbones; checks keywords now.

    Backbones know each block's channels and map size; the user knows only the kind and its
    options. Building one module up front surfaces bad values before the network is built.
    """
    check_recalibration_kwargs(kind, kwargs)
    pass_size = needs_feature_size(kind)

    def build(channels: int, feature_size: tuple[int, int]) -> Recalibration:
        extra = {"feature_size": feature_size} if pass_size else {}
        return create_recalibration(kind, channels, **kwargs, **extra)

    build(16, (1, 1))
    return build
