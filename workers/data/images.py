"""Decoding image files: into one in-memory uint8 tensor, or streamed by DataLoader workers."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .base import DatasetError


def read_image(path: Path) -> torch.Tensor:
    """An RGB uint8 CHW tensor; a file that does not decode raises DatasetError naming it."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... by codec
        raise DatasetError(f"corrupt or unreadable image file {path}: {error}") from error


def square(size: int) -> v2.Compose:
    """Resize the shorter side to ``size`` and take the centre square (how small sets are stored)."""
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])


class ImageFiles(Dataset):
    """(image, label) pairs read from files, transformed on the DataLoader worker."""

    def __init__(self, files: list[Path], labels: np.ndarray, transform: Callable | None = None):
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = read_image(self.files[i])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])


def decode_all(files: list[Path], size: int, num_workers: int = 0) -> torch.Tensor:
    """All files decoded to ``size`` x ``size`` squares, stacked as one uint8 NCHW tensor."""
    dataset = ImageFiles(files, np.zeros(len(files), dtype=np.int64), square(size))
    loader = DataLoader(dataset, batch_size=256, num_workers=num_workers)
    return torch.cat([images for images, _ in loader]) if files else torch.empty(0, 3, size, size,
                                                                                    dtype=torch.uint8)
