"""Channel-recalibration modules (SRM, SE, GE-θ, CBAM) and ResNet backbones. Pure PyTorch.

    >>> import srm_models
    >>> model = srm_models.create_model("srm_resnet50", num_classes=10)
    >>> srm_models.complexity(model, 224).params_m
"""
from .complexity import Complexity, complexity
from .errors import InvalidArgumentError, UnknownModelError
from .fuse import fuse_for_inference
from .layers import (CBAM, GE, SE, SRM, NoRecalibration, Recalibration, create_recalibration)
from .registry import create_model, describe_model, list_models

__version__ = "0.1.0"

__all__ = [
    "CBAM", "GE", "SE", "SRM", "Complexity", "InvalidArgumentError", "NoRecalibration",
    "Recalibration", "UnknownModelError", "complexity", "create_model", "create_recalibration",
    "describe_model", "fuse_for_inference", "list_models",
]
