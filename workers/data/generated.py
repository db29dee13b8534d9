"""Datasets that need nothing on disk: scikit-learn's digits and two generated, seeded ones.

``textures``: the class is carried only by style statistics (per-channel mean, contrast,
frequency and orientation of a grating), the signal SRM's style pooling is built to read.
``stylized_shapes``: the class is a shape, filled and surrounded by random textures that
act as a style nuisance, a tiny stand-in for Stylized-ImageNet.
"""
from __future__ import annotations

import numpy as np

from .base import DatasetError, DatasetIndex

GENERATOR_VERSION = 1
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")


def _gratings(rng: np.random.Generator, n: int, size: int, tint: np.ndarray, contrast: np.ndarray,
              frequency: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """n oriented sine gratings with random phase, (n, size, size, 3) floats around 0.5."""
    coords = np.linspace(0.0, 1.0, size, endpoint=False, dtype=np.float32)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    along = x[None] * np.cos(orientation)[:, None, None] + y[None] * np.sin(orientation)[:, None, None]
    wave = np.sin(2 * np.pi * frequency[:, None, None] * along + phase)
    return tint[:, None, None, :] + contrast[:, None, None, None] * wave[..., None]


def _to_uint8_nchw(images: np.ndarray) -> np.ndarray:
    return np.clip(images * 255.0, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).copy()


def textures(n_per_class: int = 64, image_size: int = 32, num_classes: int = 8,
             seed: int = 0) -> tuple[DatasetIndex, np.ndarray]:
    """Class bits choose orientation, frequency, contrast and colour; each sample jitters them."""
    if not 2 <= num_classes <= 16:
        raise DatasetError(f"textures: num_classes must be between 2 and 16, got {num_classes}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    n = len(labels)
    bit = lambda b: (labels >> b) & 1  # noqa: E731 - one attribute per bit of the class id
    orientation = np.where(bit(0), np.pi / 4, -np.pi / 4) + rng.normal(0, 0.15, n)
    frequency = np.where(bit(1), 6.0, 3.0) * rng.uniform(0.85, 1.15, n)
    contrast = np.where(bit(2), 0.3, 0.12) * rng.uniform(0.8, 1.2, n)
    warm, cool = np.array([0.6, 0.45, 0.35]), np.array([0.35, 0.45, 0.6])
    tint = np.where(bit(3)[:, None], warm, cool) + rng.normal(0, 0.04, (n, 3))
    images = _gratings(rng, n, image_size, tint, contrast, frequency, orientation)
    images += rng.normal(0, 0.08, images.shape)
    names = [f"o{int(c & 1)}-f{int(c >> 1 & 1)}-c{int(c >> 2 & 1)}-t{int(c >> 3 & 1)}"
             for c in range(num_classes)]
    index = DatasetIndex(name="textures", class_names=names, labels=labels.astype(np.int64),
                         identity={"generator": GENERATOR_VERSION, "n_per_class": n_per_class,
                                   "image_size": image_size, "num_classes": num_classes, "seed": seed})
    return index, _to_uint8_nchw(images.astype(np.float32))


def _shape_masks(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    coords = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    n = len(labels)
    cx, cy = rng.uniform(-0.25, 0.25, (2, n, 1, 1)).astype(np.float32)
    radius = rng.uniform(0.45, 0.7, (n, 1, 1)).astype(np.float32)
    dx, dy = (x[None] - cx) / radius, (y[None] - cy) / radius
    shapes = {
        "circle": dx ** 2 + dy ** 2 <= 1.0,
        "square": np.maximum(abs(dx), abs(dy)) <= 0.8,
        "triangle": (dy <= 0.7) & (dy >= 2 * abs(dx) - 1.0),
        "cross": (np.minimum(abs(dx), abs(dy)) <= 0.25) & (np.maximum(abs(dx), abs(dy)) <= 1.0),
        "ring": (dx ** 2 + dy ** 2 <= 1.0) & (dx ** 2 + dy ** 2 >= 0.4),
        "diamond": abs(dx) + abs(dy) <= 1.0,
    }
    masks = np.zeros((n, size, size), dtype=bool)
    for class_id, name in enumerate(SHAPES[: labels.max() + 1]):
        chosen = labels == class_id
        masks[chosen] = shapes[name][chosen]
    return masks


def _random_textures(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return _gratings(rng, n, size, tint=rng.uniform(0.2, 0.8, (n, 3)),
                     contrast=rng.uniform(0.05, 0.3, n), frequency=rng.uniform(2.0, 8.0, n),
                     orientation=rng.uniform(0, np.pi, n))


def stylized_shapes(n_per_class: int = 64, image_size: int = 32, num_classes: int = 4,
                    seed: int = 0) -> tuple[DatasetIndex, np.ndarray]:
    """Shape classes whose fill and background are independent random textures."""
    if not 2 <= num_classes <= len(SHAPES):
        raise DatasetError(f"stylized_shapes: num_classes must be between 2 and {len(SHAPES)}, "
                           f"got {num_classes}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    masks = _shape_masks(labels, image_size, rng)[..., None]
    images = np.where(masks, _random_textures(rng, len(labels), image_size),
                      _random_textures(rng, len(labels), image_size))
    index = DatasetIndex(name="stylized_shapes", class_names=list(SHAPES[:num_classes]),
                         labels=labels.astype(np.int64),
                         identity={"generator": GENERATOR_VERSION, "n_per_class": n_per_class,
                                   "image_size": image_size, "num_classes": num_classes, "seed": seed})
    return index, _to_uint8_nchw(images.astype(np.float32))


def digits() -> tuple[DatasetIndex, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images), grey levels repeated on three channels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.repeat(grey[:, None], 3, axis=1)
    index = DatasetIndex(name="digits", class_names=[str(d) for d in bunch.target_names],
                         labels=bunch.target.astype(np.int64), identity={"source": "sklearn.load_digits"})
    return index, images
