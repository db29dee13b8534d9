"""Recalibration modules, one per file, and the registry of kinds they are built by.

Adding a built-in kind: its module in a new file here, plus one ``register_recalibration`` line below.
"""
from .base import NoRecalibration, Recalibration
from .cbam import CBAM
from .create import create_recalibration, recalibration_arguments
from .eca import ECA
from .gct import GCT
from .ge import GE
from .kinds import (
                    BASELINE,
                    RecalibrationKind,
                    get_kind,
                    provenance,
                    recalibration_kinds,
                    register_recalibration,
                    variant_kinds,
)
from .se import SE
from .simam import SimAM
from .srm import SRM

register_recalibration("none", NoRecalibration, description=f"no module: the plain network ({BASELINE!r} in jobs)")
register_recalibration("se", SE, description="Squeeze-and-Excitation: average pool, bottleneck MLP, sigmoid")
register_recalibration("ge", GE, needs_feature_size=True,
                       description="Gather-Excite GE-θ: depth-wise conv over the whole map, BN, sigmoid")
register_recalibration("srm", SRM, description="Style-based Recalibration: mean and std, channel-wise FC, BN, "
                                               "sigmoid")
register_recalibration("cbam", CBAM, description="CBAM: channel attention (avg+max MLP), then spatial attention")
register_recalibration("eca", ECA, description="Efficient Channel Attention: average pool, 1-D conv across "
                                               "channels (adaptive k), sigmoid")
register_recalibration("gct", GCT, description="Gated Channel Transformation: l2 embedding, channel "
                                               "normalisation, 1 + tanh gate")
register_recalibration("simam", SimAM, description="SimAM: parameter-free energy-based attention per neuron")

__all__ = [
    "BASELINE", "CBAM", "ECA", "GCT", "GE", "NoRecalibration", "Recalibration", "RecalibrationKind", "SE", "SRM",
    "SimAM", "create_recalibration", "get_kind", "provenance", "recalibration_arguments", "recalibration_kinds",
    "register_recalibration", "variant_kinds",
]
