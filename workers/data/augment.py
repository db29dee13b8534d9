"""Training augmentation applied to whole uint8 batches on the training device.

Keeping small datasets as one uint8 tensor and augmenting on the device means a GPU never
waits for a Python data loader. Random numbers come from a caller-owned generator so a
resumed trial replays exactly the augmentation an uninterrupted one would have drawn.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F
from torchvision.ops import roi_align


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float, scaled to [0, 1] and standardised per channel."""
    return (images.float().div_(255.0) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def random_crop(images: torch.Tensor, size: int, padding: int, generator: torch.Generator) -> torch.Tensor:
    """A ``size`` crop at a random offset of each zero-padded image (CIFAR's pad-and-crop)."""
    if padding:
        images = F.pad(images, (padding,) * 4)
    n, _, height, width = images.shape
    top = torch.randint(0, height - size + 1, (n,), generator=generator, device=generator.device)
    left = torch.randint(0, width - size + 1, (n,), generator=generator, device=generator.device)
    offsets = torch.arange(size, device=images.device)
    rows = (top.to(images.device)[:, None] + offsets)[:, None, :, None]
    cols = (left.to(images.device)[:, None] + offsets)[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return images[batch, channel, rows, cols]


def random_resized_crop(images: torch.Tensor, size: int, generator: torch.Generator,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Inception-style crops (random area and aspect ratio) resized to ``size``, via roi_align."""
    n, _, height, width = images.shape
    dev = generator.device
    area = torch.empty(n, device=dev).uniform_(*scale, generator=generator) * height * width
    log_ratio = torch.empty(n, device=dev).uniform_(*torch.tensor(ratio).log().tolist(), generator=generator)
    aspect = log_ratio.exp()
    crop_w = (area * aspect).sqrt().clamp(max=width)
    crop_h = (area / aspect).sqrt().clamp(max=height)
    x0 = torch.rand(n, device=dev, generator=generator) * (width - crop_w)
    y0 = torch.rand(n, device=dev, generator=generator) * (height - crop_h)
    boxes = torch.stack([torch.arange(n, device=dev, dtype=torch.float32), x0, y0, x0 + crop_w,
                         y0 + crop_h], dim=1).to(images.device)
    return roi_align(images.float(), boxes, output_size=size, aligned=True)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` square (evaluation); images smaller than ``size`` are resized up."""
    height, width = images.shape[-2:]
    if height < size or width < size:
        return F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size]


def label_safe(mode: str, flip: bool, keeps_labels: frozenset[str]) -> tuple[str, bool]:
    """A protocol's train augmentation (``mode``, ``flip``) less what would change a dataset's
    labels: a crop the dataset does not keep becomes the evaluation's centre crop, a flip is dropped."""
    return (mode if mode == "none" or mode in keeps_labels else "none"), flip and "flip" in keeps_labels


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


class DeviceAugment:
    """The protocol's train/eval transform for uint8 batches already on the device."""

    def __init__(self, mode: str, image_size: int, padding: int, flip: bool,
                 mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                 channels_last: bool = False):
        self.mode, self.image_size, self.padding, self.flip = mode, image_size, padding, flip
        self.mean = torch.tensor(mean, device=device)
        self.std = torch.tensor(std, device=device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def train(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.finish(self.geometric(images, generator))

    def geometric(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The random crop and flip alone, before normalisation (uint8 in, uint8 or float 0..255 out)."""
        if self.mode == "random_resized_crop":
            images = random_resized_crop(images, self.image_size, generator)
        elif self.mode == "crop":
            images = random_crop(images, self.image_size, self.padding, generator)
        else:
            images = center_crop(images, self.image_size)
        if self.flip:
            images = random_flip(images, generator)
        return images

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        return self.finish(center_crop(images, self.image_size))

    def finish(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = normalize(images, self.mean, self.std)
        else:  # roi_align/interpolate already gave floats in 0..255
            images = (images / 255.0 - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return images.contiguous(memory_format=self.memory_format)
