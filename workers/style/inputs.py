"""A style-transfer job's inputs: its content images and its style image, read from the data dir.

Content: a registered dataset (its images; labels are ignored), ``imagefolder:<path>`` or ``images:<path>``
(a flat folder of image files), paths relative to the data dir. Style: an image file relative to the data
dir, or ``generated:<name>``, a deterministic pattern for tests and the demo.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

IMAGES = "images:"
GENERATED = "generated:"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
GENERATED_STYLES = ("waves", "mosaic")
GENERATED_STYLE_SIZE = 64


class StyleInputError(ValueError):
    """Content or style input that cannot be used; ``field`` is the job field it comes from."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _inside(data_dir: Path, relative: str, field: str) -> Path:
    root = Path(data_dir).resolve()
    path = (root / relative).resolve()
    if not relative or not path.is_relative_to(root):
        raise StyleInputError(field, f"{relative!r} must be a path inside the data dir {root}")
    return path


def _flat_images(data_dir: Path, relative: str) -> list[Path]:
    folder = _inside(data_dir, relative, "dataset")
    if not folder.is_dir():
        raise StyleInputError("dataset", f"images:{relative}: no folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise StyleInputError("dataset", f"images:{relative}: the folder {folder} has no images "
                                         f"({', '.join(IMAGE_SUFFIXES)})")
    return files


def describe_content(source: str, data_dir: Path) -> tuple[int, str]:
    """(number of images, fingerprint) without decoding pixels; StyleInputError naming ``dataset`` if unusable."""
    from workers.data import DatasetError, describe_dataset

    if source.startswith(IMAGES):
        files = _flat_images(data_dir, source[len(IMAGES):])
        digest = hashlib.sha256(b"images\n")
        for path in files:
            digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
        return len(files), digest.hexdigest()
    try:
        summary = describe_dataset(source, data_dir)
    except DatasetError as error:
        raise StyleInputError("dataset", str(error)) from error
    return summary.num_samples, summary.fingerprint


def load_content(source: str, data_dir: Path, size: int, max_images: int | None = None) -> tuple[torch.Tensor, str]:
    """Content images as uint8 (N, 3, size, size) (shorter side resized, centre crop) and the fingerprint."""
    from workers.data import DatasetError, load_dataset
    from workers.data.images import decode_all

    count, fingerprint = describe_content(source, data_dir)
    try:
        if source.startswith(IMAGES):
            images = decode_all(_flat_images(data_dir, source[len(IMAGES):])[:max_images], size)
        else:
            images = load_dataset(source, data_dir, size=size, in_memory="always").images
    except DatasetError as error:
        raise StyleInputError("dataset", str(error)) from error
    return images[:max_images] if max_images else images, fingerprint


def generated_style(name: str, size: int = GENERATED_STYLE_SIZE) -> torch.Tensor:
    """A deterministic uint8 (3, size, size) style image: ``waves`` (coloured diagonal sine bands) or
    ``mosaic`` (a grid of saturated tiles with dark edges)."""
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    if name == "waves":
        phase = 2 * math.pi * (3 * x + 2 * y)
        image = np.stack([0.5 + 0.5 * np.sin(phase), 0.5 + 0.5 * np.sin(phase + 2.1),
                          0.5 + 0.5 * np.sin(1.7 * phase + 4.2)])
    elif name == "mosaic":
        rng = np.random.default_rng(7)
        tiles = 8
        colours = rng.uniform(0.1, 1.0, size=(3, tiles, tiles))
        rows, cols = (y * tiles).astype(int).clip(0, tiles - 1), (x * tiles).astype(int).clip(0, tiles - 1)
        edge = (np.minimum((y * tiles) % 1, (x * tiles) % 1) < 0.12).astype(float)
        image = colours[:, rows, cols] * (1 - 0.85 * edge)
    else:
        raise StyleInputError("style_image", f"unknown generated style {GENERATED + name!r}; valid: "
                                             f"{', '.join(GENERATED + n for n in GENERATED_STYLES)}")
    return torch.from_numpy((image * 255).round().clip(0, 255).astype(np.uint8))


def load_style(reference: str, data_dir: Path) -> tuple[torch.Tensor, str]:
    """The style image as uint8 (3, H, W) at its own size, and a digest of its pixels."""
    from workers.data import DatasetError
    from workers.data.images import read_image

    if reference.startswith(GENERATED):
        image = generated_style(reference[len(GENERATED):])
    else:
        path = _inside(data_dir, reference, "style_image")
        if not path.is_file():
            raise StyleInputError("style_image", f"no style image {reference!r} in the data dir ({path})")
        try:
            image = read_image(path)
        except DatasetError as error:
            raise StyleInputError("style_image", str(error)) from error
        if min(image.shape[-2:]) < 16:
            raise StyleInputError("style_image", f"{reference!r} is {tuple(image.shape[-2:])}; VGG-16 needs at "
                                                 "least 16x16 pixels")
    return image, hashlib.sha256(image.numpy().tobytes()).hexdigest()


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8 (N, 3, size, size), bilinear with antialiasing."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    scaled = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return scaled.round().clamp(0, 255).byte()
