"""Spatial sizes given as an int or a pair, as backbones (``input_size``) and GE-θ (``feature_size``) take them."""
from __future__ import annotations


def as_pair(size: int | tuple[int, int] | list[int], what: str = "feature_size") -> tuple[int, int]:
    """``7`` or ``(7, 7)`` to ``(7, 7)``; anything else is rejected with a clear message."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"{what}={size!r} is not valid; give a positive int or a pair (height, width)")
    return int(size[0]), int(size[1])
