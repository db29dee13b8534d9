"""Johnson et al.'s feed-forward transformer net, as in the official fast-neural-style example, with its
normalization layers switchable (BatchNorm or affine InstanceNorm) and an optional recalibration module.

Where BN+SE and BN+SRM put the module the paper does not say; by analogy with its Fig. 2b the default
(``placement="residual"``) puts one in each residual block after the block's second normalization, on
the residual branch. ``placement="all_norms"`` puts one after every normalization layer of the net.
"""
from __future__ import annotations

from torch import nn

NORMS = ("bn", "in")
PLACEMENTS = ("residual", "all_norms")


def parse_variant(label: str) -> tuple[str, str | None]:
    """'bn+srm' -> ('bn', 'srm'); 'in' -> ('in', None). Raises ValueError naming what is valid."""
    import srm_models

    norm, _, kind = label.partition("+")
    if norm not in NORMS or (kind == "" and "+" in label):
        raise ValueError(f"unknown style-transfer variant {label!r}; valid: {', '.join(valid_variants())}")
    if not kind:
        return norm, None
    kinds = srm_models.recalibration_kinds()
    if kind not in kinds or kind == "none":
        raise ValueError(f"unknown style-transfer variant {label!r}; valid: {', '.join(valid_variants())}")
    return norm, kind


def valid_variants() -> list[str]:
    """bn, in and bn+<kind> for every registered recalibration kind."""
    import srm_models

    return ["bn", "in", *(f"bn+{k}" for k in srm_models.recalibration_kinds() if k != "none")]


def make_norm(norm: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "bn" else nn.InstanceNorm2d(channels, affine=True)


class NormThenRecalibrate(nn.Sequential):
    """A normalization followed by a recalibration module (``all_norms`` placement)."""


def _recalibration(kind: str, channels: int, size: int | None) -> nn.Module:
    """The registry's module; kinds with a fixed feature size (GE-θ) get the map's size, which the net knows
    only when built for one image size."""
    from srm_models import create_recalibration, get_kind

    if not get_kind(kind).needs_feature_size:
        return create_recalibration(kind, channels)
    if size is None:
        raise ValueError(f"bn+{kind} needs the image size: its module is built for one feature map size")
    return create_recalibration(kind, channels, feature_size=(size, size))


def _normalized(norm: str, channels: int, kind: str | None, placement: str, size: int | None) -> nn.Module:
    layer = make_norm(norm, channels)
    if kind is None or placement != "all_norms":
        return layer
    return NormThenRecalibrate(layer, _recalibration(kind, channels, size))


class ReflectConv(nn.Sequential):
    """Reflection padding then a convolution: the example's ConvLayer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel_size // 2),
                         nn.Conv2d(in_channels, out_channels, kernel_size, stride))


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour upsampling by 2, then a reflection-padded convolution (no checkerboard artifacts)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         ReflectConv(in_channels, out_channels, kernel_size))


class ResidualBlock(nn.Module):
    """conv-norm-relu-conv-norm (+ recalibration on the branch) plus the identity; no ReLU after the sum."""

    def __init__(self, channels: int, norm: str, kind: str | None, placement: str, size: int | None = None):
        super().__init__()
        self.conv1 = ReflectConv(channels, channels, 3)
        self.norm1 = _normalized(norm, channels, kind, placement, size)
        self.conv2 = ReflectConv(channels, channels, 3)
        self.norm2 = _normalized(norm, channels, kind, placement, size)
        self.relu = nn.ReLU()
        self.recalibration = None
        if kind is not None and placement == "residual":
            self.recalibration = _recalibration(kind, channels, size)

    def forward(self, x):
        branch = self.norm2(self.conv2(self.relu(self.norm1(self.conv1(x)))))
        if self.recalibration is not None:
            branch = self.recalibration(branch)
        return x + branch


class TransformerNet(nn.Module):
    """Down-sampling convs (9x9/1, 3x3/2, 3x3/2), 5 residual blocks of 128 channels, up-sampling convs back to
    RGB. Inputs and outputs are images in [0, 255], as in the example. ``image_size`` is needed only by
    recalibration kinds built for one feature map size (GE-θ)."""

    def __init__(self, norm: str = "in", recalibration: str | None = None, placement: str = "residual",
                 image_size: int | None = None):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {placement!r}")
        self.norm, self.kind, self.placement = norm, recalibration, placement

        def size(divisor: int) -> int | None:
            return image_size // divisor if image_size else None

        def stage(conv: nn.Module, channels: int, divisor: int) -> nn.Sequential:
            return nn.Sequential(conv, _normalized(norm, channels, recalibration, placement, size(divisor)), nn.ReLU())

        self.down = nn.Sequential(stage(ReflectConv(3, 32, 9), 32, 1), stage(ReflectConv(32, 64, 3, 2), 64, 2),
                                  stage(ReflectConv(64, 128, 3, 2), 128, 4))
        self.residual = nn.Sequential(*(ResidualBlock(128, norm, recalibration, placement, size(4))
                                        for _ in range(5)))
        self.up = nn.Sequential(stage(UpsampleConv(128, 64, 3), 64, 2), stage(UpsampleConv(64, 32, 3), 32, 1),
                                ReflectConv(32, 3, 9))

    def forward(self, x):
        return self.up(self.residual(self.down(x)))


def build_transformer(variant: str, placement: str = "residual", image_size: int | None = None) -> TransformerNet:
    norm, kind = parse_variant(variant)
    return TransformerNet(norm, kind, placement, image_size)
