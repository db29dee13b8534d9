"""CIFAR ResNets (depth 20/32/56/110): 3x3 stem, three stages at 32/16/8 pixels, 16/32/64 planes.

Two block layouts, chosen by ``block``:

- ``"bottleneck"`` (default): (depth-2)/6 bottleneck blocks per stage, widths 64/128/256 after
  expansion, projection shortcuts. This is the network whose counts match Table 2 of the SRM
  paper (ResNet-56: 0.87M, SE 0.97M, GE 1.91M, SRM 0.89M; +0.02M for 100 classes).
- ``"basic"``: He et al.'s original (depth-2)/6 basic blocks per stage, widths 16/32/64,
  parameter-free zero-padding shortcuts (option A); ResNet-56 has 0.85M parameters.

docs/models.md explains how the counts were matched.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .errors import InvalidArgumentError
from .layers.create import recalibration_builder
from .resnet import BasicBlock, Block, Bottleneck, conv3x3, init_weights, make_stage, projection
from .shapes import as_pair

CIFAR_BLOCKS: dict[str, Block] = {"bottleneck": Bottleneck, "basic": BasicBlock}


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by the stride and zero-pad the new channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class CifarResNet(nn.Module):
    """ResNet for small images. Arguments as for :class:`srm_models.resnet.ResNet`, plus
    ``depth`` (6n+2) and ``block`` (``bottleneck`` or ``basic``); ``input_size`` defaults to 32."""

    def __init__(self, depth: int = 56, num_classes: int = 10, block: str = "bottleneck",
                 recalibration: str = "none", recalibration_kwargs: dict | None = None,
                 input_size: int | tuple[int, int] = 32, in_chans: int = 3,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        if block not in CIFAR_BLOCKS:
            raise InvalidArgumentError(f"block={block!r} is not valid; choose one of {', '.join(CIFAR_BLOCKS)}")
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise InvalidArgumentError(f"depth={depth!r} is not valid; a CIFAR ResNet has depth 6n+2 "
                                       "(20, 32, 44, 56, 110, ...)")
        build_recalibration = recalibration_builder(recalibration, **(recalibration_kwargs or {}))
        block_cls = CIFAR_BLOCKS[block]
        shortcut = PadShortcut if block == "basic" else projection
        blocks_per_stage = (depth - 2) // 6
        self.depth = depth
        self.block = block
        self.input_size = as_pair(input_size, "input_size")
        self.num_classes = num_classes
        self.conv1 = conv3x3(in_chans, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        size, in_channels = self.input_size, 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            stage, in_channels, size = make_stage(block_cls, in_channels, planes, blocks_per_stage,
                                                  stride, size, build_recalibration, stride_in_1x1,
                                                  shortcut)
            stages.append(stage)
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.num_features = in_channels
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))
