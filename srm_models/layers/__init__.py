"""Recalibration modules, one per file, and the factory that builds them by kind."""
from .base import NoRecalibration, Recalibration
from .cbam import CBAM
from .create import RECALIBRATIONS, create_recalibration, recalibration_arguments
from .ge import GE
from .se import SE
from .srm import SRM

__all__ = [
    "CBAM", "GE", "NoRecalibration", "RECALIBRATIONS", "Recalibration", "SE", "SRM",
    "create_recalibration", "recalibration_arguments",
]
