"""Every plain backbone against torchvision's ResNet building blocks with the same weights.

torchvision's ResNet is an independent implementation: equal outputs pin the block wiring
(every ReLU, BN and shortcut), the stride placement and the stem. CIFAR ResNets are rebuilt
here from torchvision's BasicBlock/Bottleneck with a 3x3 stem and three stages.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import resnet as tv

from srm_models import create_model


def randomise_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so an eval forward tests every BN."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)


def same_outputs(ours: nn.Module, reference: nn.Module, size: int) -> None:
    reference.load_state_dict(ours.state_dict(), strict=True)  # same names, same shapes, same values
    ours.eval()
    reference.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)
    ours.train()
    reference.train()
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)  # batch statistics too


@pytest.mark.parametrize("depth, builder", [(18, tv.resnet18), (34, tv.resnet34), (50, tv.resnet50),
                                            (101, tv.resnet101), (152, tv.resnet152)])
def test_imagenet_resnets_equal_torchvision(depth, builder):
    ours = create_model(f"resnet{depth}", num_classes=7)
    randomise_bn(ours)
    same_outputs(ours, builder(num_classes=7), 32)


class OptionA(nn.Module):
    """He et al.'s parameter-free shortcut, written here from the paper: subsample, zero-pad channels."""

    def __init__(self, extra: int, stride: int):
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x):
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))


class ReferenceCifarResNet(nn.Module):
    """3x3 stem (16), three stages at strides 1, 2, 2 of torchvision blocks, average pool, classifier."""

    def __init__(self, block, blocks_per_stage: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_channels, stages = 16, []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            out_channels = planes * block.expansion
            layers = []
            for index in range(blocks_per_stage):
                s = stride if index == 0 else 1
                downsample = None
                if index == 0 and (s != 1 or in_channels != out_channels):
                    if block is tv.BasicBlock:
                        downsample = OptionA(out_channels - in_channels, s)
                    else:
                        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=s, bias=False),
                                                   nn.BatchNorm2d(out_channels))
                layers.append(block(in_channels, planes, s, downsample))
                in_channels = out_channels
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("depth", [20, 32, 56, 110])
@pytest.mark.parametrize("block", ["bottleneck", "basic"])
def test_cifar_resnets_equal_torchvision_blocks(depth, block):
    ours = create_model(f"cifar_resnet{depth}", num_classes=5, block=block)
    randomise_bn(ours)
    tv_block = tv.Bottleneck if block == "bottleneck" else tv.BasicBlock
    same_outputs(ours, ReferenceCifarResNet(tv_block, (depth - 2) // 6, 5), 8)
