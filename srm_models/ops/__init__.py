"""Fast SRM: a fused style pooling + gate + recalibration op (``torch.ops.srm_models.*``).

The reference path (plain autograd over separate ops) stays available for debugging: set
``SRM_FORCE_REFERENCE=1`` or use ``with srm_models.ops.use_reference(): ...``.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

from . import fused  # noqa: F401  (registers torch.ops.srm_models.srm_forward / srm_backward)
from .fused import srm_backward, srm_forward, srm_residual_inference_

FORCE_REFERENCE_ENV = "SRM_FORCE_REFERENCE"
logger = logging.getLogger(__name__)
_forced = False
_logged_reasons: set[str] = set()


def reference_forced() -> bool:
    """True inside ``use_reference()`` or when SRM_FORCE_REFERENCE is set to anything but 0."""
    return _forced or os.environ.get(FORCE_REFERENCE_ENV, "0") not in ("", "0")


@contextmanager
def use_reference(enabled: bool = True) -> Iterator[None]:
    """Run SRM through the reference (unfused) formulation inside this block."""
    global _forced
    previous, _forced = _forced, enabled
    try:
        yield
    finally:
        _forced = previous


def log_reference_once(reason: str) -> None:
    """Say at debug level, once per reason, that SRM took the slow reference path."""
    if reason not in _logged_reasons:
        _logged_reasons.add(reason)
        logger.debug("SRM runs the reference (unfused) path: %s", reason)


__all__ = ["FORCE_REFERENCE_ENV", "log_reference_once", "reference_forced", "srm_backward",
           "srm_forward", "srm_residual_inference_", "use_reference"]
