"""Channel-recalibration modules (SRM, SE, GE-θ, CBAM, ECA, GCT, SimAM, and your own) and ResNet
backbones. Pure PyTorch.

    >>> import srm_models
    >>> model = srm_models.create_model("srm_resnet50", num_classes=10)
    >>> srm_models.complexity(model, 224).params_m

A new kind: ``srm_models.register_recalibration("mygate", MyGate, description=...)``, where
``MyGate(channels, **options)`` subclasses :class:`srm_models.Recalibration`.
"""
from .complexity import Complexity, complexity
from .errors import InvalidArgumentError, UnknownModelError
from .fuse import fuse_for_inference
from .layers import (
                     BASELINE,
                     CBAM,
                     ECA,
                     GCT,
                     GE,
                     SE,
                     SRM,
                     NoRecalibration,
                     Recalibration,
                     RecalibrationKind,
                     SimAM,
                     create_recalibration,
                     get_kind,
                     provenance,
                     recalibration_kinds,
                     register_recalibration,
                     variant_kinds,
)
from .registry import backbones, create_model, describe_model, list_models, model_name

__version__ = "0.1.0"

__all__ = [
    "BASELINE", "CBAM", "ECA", "GCT", "GE", "SE", "SRM", "Complexity", "InvalidArgumentError", "NoRecalibration",
    "Recalibration", "RecalibrationKind", "SimAM", "UnknownModelError", "backbones", "complexity", "create_model",
    "create_recalibration", "describe_model", "fuse_for_inference", "get_kind", "list_models", "model_name",
    "provenance", "recalibration_kinds", "register_recalibration", "variant_kinds",
]
