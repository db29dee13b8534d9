"""ImageNet ResNet-18/34/50/101/152 with a recalibration slot on every residual branch.

The recalibration module sits after the last BN of the residual branch, before the addition
(Fig. 2b of the SRM paper). Every block ends with
``self.recalibration.forward_residual(out, identity)``, which is ``relu(recal(out) + identity)``
and lets a module fuse those three steps.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .layers.base import Recalibration
from .layers.create import recalibration_builder
from .shapes import as_pair

RecalibrationBuilder = Callable[[int, tuple[int, int]], Recalibration]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def downsampled(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Map size after a stride-``stride`` conv/pool with 'same' padding (3x3 p1, 7x7 p3, 1x1 p0)."""
    return (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; the recalibration gates the second one's output.

    ``stride_in_1x1`` is accepted so that both block types share one signature; a basic block
    has no 1x1 convolution, and the registry rejects the keyword for basic-block models.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, downsample: nn.Module | None,
                 recalibration: Recalibration, stride_in_1x1: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.recalibration = recalibration

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.recalibration.forward_residual(out, identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4); the recalibration gates the expanded output.

    ``stride_in_1x1`` puts a downsampling block's stride on the first 1x1 convolution (the
    original ResNet, whose ResNet-50 costs 3.86 GMACs) instead of the 3x3 (torchvision's
    "v1.5", 4.09 GMACs, slightly more accurate).
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, downsample: nn.Module | None,
                 recalibration: Recalibration, stride_in_1x1: bool = False) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes, stride_1x1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride_3x3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.recalibration = recalibration

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.recalibration.forward_residual(out, identity)


Block = type[BasicBlock] | type[Bottleneck]


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """He et al.'s option B shortcut: a strided 1x1 convolution and BN."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


def init_weights(model: nn.Module) -> None:
    """He initialisation for the backbone's convolutions, BN to identity.

    Recalibration modules keep their own initialisation (SRM's CFC starts at zero on purpose).
    """
    inside_recalibration = {id(sub) for module in model.modules() if isinstance(module, Recalibration)
                            for sub in module.modules()}
    for module in model.modules():
        if id(module) in inside_recalibration:
            continue
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)) and module.weight.is_meta:
            continue  # a meta model (for counting) has no values to initialise
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def make_stage(block: Block, in_channels: int, planes: int, blocks: int, stride: int,
               size: tuple[int, int], build_recalibration: RecalibrationBuilder,
               stride_in_1x1: bool, shortcut: Callable[[int, int, int], nn.Module],
               ) -> tuple[nn.Sequential, int, tuple[int, int]]:
    """One stage of ``blocks`` blocks; the first one downsamples. Returns it, its width, its map size."""
    out_channels = planes * block.expansion
    size = downsampled(size, stride)
    layers = []
    for index in range(blocks):
        block_stride = stride if index == 0 else 1
        downsample = None
        if index == 0 and (stride != 1 or in_channels != out_channels):
            downsample = shortcut(in_channels, out_channels, stride)
        layers.append(block(in_channels, planes, block_stride, downsample,
                            build_recalibration(out_channels, size), stride_in_1x1))
        in_channels = out_channels
    return nn.Sequential(*layers), out_channels, size


class ResNet(nn.Module):
    """ImageNet-style ResNet: 7x7 stem, max pool, four stages, global average pool, classifier.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: outputs of the classifier.
        recalibration: a registered kind (``srm_models.recalibration_kinds()``), ``none`` for none.
        recalibration_kwargs: options of that module (``reduction``, ``pooling``, ...).
        input_size: height and width of the input images; GE-θ sizes its kernels from it.
        in_chans: channels of the input images.
        stride_in_1x1: see :class:`Bottleneck`; default ``False`` (torchvision's placement).
    """

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 1000,
                 recalibration: str = "none", recalibration_kwargs: dict | None = None,
                 input_size: int | tuple[int, int] = 224, in_chans: int = 3,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        build_recalibration = recalibration_builder(recalibration, **(recalibration_kwargs or {}))
        self.input_size = as_pair(input_size, "input_size")
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        size = downsampled(downsampled(self.input_size, 2), 2)
        in_channels = 64
        stages = []
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if index == 0 else 2
            stage, in_channels, size = make_stage(block, in_channels, planes, blocks, stride, size,
                                                  build_recalibration, stride_in_1x1, projection)
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.num_features = in_channels
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))


RESNET_LAYOUTS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet(depth: int, **kwargs) -> ResNet:
    """ResNet of the given depth (18, 34, 50, 101, 152); keywords as for :class:`ResNet`."""
    block, layers = RESNET_LAYOUTS[depth]
    return ResNet(block, layers, **kwargs)
