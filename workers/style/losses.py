"""Perceptual losses of the fast-neural-style example: content at relu2_2, style from Gram matrices."""
from __future__ import annotations

import torch
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONTENT_LAYER = 1  # relu2_2 among (relu1_2, relu2_2, relu3_3, relu4_3)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C): channel inner products over positions, divided by C*H*W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 255] to VGG's input: [0, 1], then ImageNet mean and std per channel."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images / 255.0 - mean) / std


def content_loss(output_features: list[torch.Tensor], content_features: list[torch.Tensor],
                 weight: float) -> torch.Tensor:
    """weight * mean squared difference of the relu2_2 activations."""
    return weight * F.mse_loss(output_features[CONTENT_LAYER], content_features[CONTENT_LAYER])


def style_loss(output_features: list[torch.Tensor], style_grams: list[torch.Tensor], weight: float) -> torch.Tensor:
    """weight * sum over the four layers of the mean squared difference of Gram matrices (the style's
    Gram matrices, (1, C, C), broadcast over the batch)."""
    total = output_features[0].new_zeros(())
    for features, target in zip(output_features, style_grams, strict=True):
        gram = gram_matrix(features)
        total = total + F.mse_loss(gram, target.expand_as(gram))
    return weight * total
