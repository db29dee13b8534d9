"""Datasets that need nothing on disk: scikit-learn's digits and two generated, seeded ones.

``textures``: the class is carried only by per-channel style statistics (each channel's mean
and standard deviation, what SRM's style pooling reads); the spatial content is a random
nuisance shared by all classes. ``stylized_shapes``: the class is a shape whose fill and
background are random textures, a style nuisance, as in Stylized-ImageNet.

Each generated set has a ``difficulty`` knob (an integer percent) and declares, beside its
generator, which training augmentations keep its labels (``*_AUGMENTATIONS``); protocols
apply only those (``augment.label_safe``). Each also defines its class from pixels without a
classifier (``*_class_of``), exact at difficulty 0, so tests can check that an augmented
image keeps its class. ``GENERATOR_VERSION`` is in the fingerprint: results of an older
generator are never mixed with these.
"""
from __future__ import annotations

import functools

import numpy as np

from .base import DatasetError, DatasetIndex

GENERATOR_VERSION = 2
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")

# Flipping keeps every channel's mean and std; pad-and-crop adds black borders and a
# random-resized crop sees a patch of the content, both of which move those statistics.
TEXTURES_AUGMENTATIONS = frozenset({"flip"})
# Every shape is left-right symmetric and kept a quarter of its half-width from the border,
# so flips and pad-and-crop shifts (at most 1/8 of the side) keep it whole; a random-resized
# crop may cut it away.
STYLIZED_SHAPES_AUGMENTATIONS = frozenset({"flip", "crop"})
# A mirrored digit is not a digit (and random-resized crops may cut it away); small shifts keep it.
DIGITS_AUGMENTATIONS = frozenset({"crop"})


def _to_uint8_nchw(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).copy()


def _gratings(rng: np.random.Generator, n: int, size: int, frequency: tuple[float, float],
              waves: int = 1) -> np.ndarray:
    """(n, size, size) sums of ``waves`` sine gratings of random orientation, frequency, phase."""
    coords = np.linspace(0.0, 1.0, size, endpoint=False, dtype=np.float32)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    total = np.zeros((n, size, size), dtype=np.float32)
    for _ in range(waves):
        angle = rng.uniform(0, np.pi, (n, 1, 1))
        cycles = rng.uniform(*frequency, (n, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
        amplitude = rng.uniform(0.5, 1.0, (n, 1, 1))
        along = x * np.cos(angle) + y * np.sin(angle)
        total += (amplitude * np.sin(2 * np.pi * cycles * along + phase)).astype(np.float32)
    return total


def _check_options(name: str, num_classes: int, most: int, difficulty: int) -> None:
    if not 2 <= num_classes <= most:
        raise DatasetError(f"{name}: num_classes must be between 2 and {most}, got {num_classes}")
    if not 0 <= difficulty <= 100:
        raise DatasetError(f"{name}: difficulty must be between 0 and 100 (percent), got {difficulty}")


# --- textures ----------------------------------------------------------------------------

TEXTURE_MEAN, TEXTURE_STD = 0.5, 0.09     # the style every class starts from
TEXTURE_STEP = np.array([0.05, 0.03])     # half the gap between classes: (mean, std) per bit


def texture_styles(num_classes: int) -> np.ndarray:
    """(num_classes, 6) per-channel (mean R, G, B, std R, G, B) of each class; one bit each:
    bit 0 warm/cool tint, bit 1 bright/dark, bit 2 high/low contrast, bit 3 contrast in red/blue."""
    classes = np.arange(num_classes)

    def sign(b: int) -> np.ndarray:  # +1 where bit b of the class id is set, else -1
        return np.where((classes >> b) & 1, 1.0, -1.0)

    mean_step, std_step = TEXTURE_STEP
    means = TEXTURE_MEAN + mean_step * (sign(0)[:, None] * [1, 0, -1] + sign(1)[:, None])
    stds = TEXTURE_STD + std_step * (sign(2)[:, None] + sign(3)[:, None] * [1, 0, -1])
    return np.concatenate([means, stds], axis=1)


def style_statistics(images: np.ndarray) -> np.ndarray:
    """(n, 6) per-channel mean and std of uint8 NCHW images, in [0, 1] units."""
    pixels = np.asarray(images, dtype=np.float64).reshape(len(images), 3, -1) / 255.0
    return np.concatenate([pixels.mean(axis=2), pixels.std(axis=2)], axis=1)


def textures_class_of(images: np.ndarray, num_classes: int = 8) -> np.ndarray:
    """The generator's own class of each image: the nearest class style, each statistic
    measured in steps between classes (exact at difficulty 0)."""
    scale = np.repeat(TEXTURE_STEP, 3)
    measured = style_statistics(images) / scale
    distance = ((measured[:, None, :] - texture_styles(num_classes)[None] / scale) ** 2).sum(axis=2)
    return distance.argmin(axis=1)


def textures(n_per_class: int = 64, image_size: int = 32, num_classes: int = 8, difficulty: int = 90,
             seed: int = 0) -> tuple[DatasetIndex, np.ndarray]:
    """Random smooth content (a nuisance), rescaled per channel to its class's mean and std.

    Every image's six statistics are jittered by ``difficulty`` percent of half the gap
    between classes (the noise's standard deviation): the nearest class style is the true
    one for every image at 0, for about 87 % at the default 90 and 83 % at 100.
    """
    _check_options("textures", num_classes, 16, difficulty)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    n = len(labels)
    content = _gratings(rng, n, image_size, frequency=(1.0, 4.0), waves=3)
    content -= content.mean(axis=(1, 2), keepdims=True)
    content /= content.std(axis=(1, 2), keepdims=True) + 1e-6
    style = texture_styles(num_classes)[labels]
    style += rng.normal(0, difficulty / 100, style.shape) * np.repeat(TEXTURE_STEP, 3)
    images = style[:, None, None, :3] + style[:, None, None, 3:] * content[..., None]
    names = [f"tint{c & 1}-bright{c >> 1 & 1}-contrast{c >> 2 & 1}-red{c >> 3 & 1}"
             for c in range(num_classes)]
    index = DatasetIndex(name="textures", class_names=names, labels=labels.astype(np.int64),
                         identity={"generator": GENERATOR_VERSION, "n_per_class": n_per_class,
                                   "image_size": image_size, "num_classes": num_classes,
                                   "difficulty": difficulty, "seed": seed,
                                   "augmentations": sorted(TEXTURES_AUGMENTATIONS)})
    return index, _to_uint8_nchw(images)


# --- stylized shapes ---------------------------------------------------------------------

SHAPE_EXTENT = 0.75   # centre jitter + radius stay inside this part of the [-1, 1] square


def _shape(name: str, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The unit shape ``name`` at offsets (dx, dy) in radii from its centre; all left-right symmetric."""
    r2 = dx ** 2 + dy ** 2
    return {
        "circle": lambda: r2 <= 1.0,
        "square": lambda: np.maximum(abs(dx), abs(dy)) <= 0.8,
        "triangle": lambda: (dy <= 0.7) & (dy >= 2 * abs(dx) - 1.0),
        "cross": lambda: (np.minimum(abs(dx), abs(dy)) <= 0.3) & (np.maximum(abs(dx), abs(dy)) <= 1.0),
        "ring": lambda: (r2 <= 1.0) & (r2 >= 0.4),
        "diamond": lambda: abs(dx) + abs(dy) <= 1.0,
    }[name]()


def shape_masks(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size) masks: each label's shape at a random place and size, never near the border."""
    coords = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(coords, coords, indexing="ij")
    n = len(labels)
    radius = rng.uniform(0.5, 0.6, (n, 1, 1)).astype(np.float32)
    cx, cy = (rng.uniform(-1, 1, (2, n, 1, 1)) * (SHAPE_EXTENT - radius)).astype(np.float32)
    dx, dy = (x[None] - cx) / radius, (y[None] - cy) / radius
    masks = np.zeros((n, size, size), dtype=bool)
    for class_id in np.unique(labels):
        chosen = labels == class_id
        masks[chosen] = _shape(SHAPES[class_id], dx[chosen], dy[chosen])
    return masks


@functools.cache
def _unit_shape_moments(num_classes: int, grid: int = 801) -> list[tuple[float, float, float]]:
    """(area, centroid dx, centroid dy) of each unit shape, in radii."""
    coords = np.linspace(-1.2, 1.2, grid)
    dy, dx = np.meshgrid(coords, coords, indexing="ij")
    cell = (coords[1] - coords[0]) ** 2
    moments = []
    for name in SHAPES[:num_classes]:
        inside = _shape(name, dx, dy)
        moments.append((inside.sum() * cell, dx[inside].mean(), dy[inside].mean()))
    return moments


def shapes_class_of(masks: np.ndarray, num_classes: int = 4) -> np.ndarray:
    """The generator's own class of each (n, H, W) mask: the shape that, placed at the mask's
    centroid and scaled to its area, overlaps it best (intersection over union)."""
    masks = np.asarray(masks, dtype=bool)
    n, height, width = masks.shape
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    cell = (2 / (height - 1)) * (2 / (width - 1))
    scores = np.zeros((n, num_classes))
    for i, mask in enumerate(masks):
        area = mask.sum() * cell
        if not area:
            continue
        mx, my = x[mask].mean(), y[mask].mean()
        for k, (unit_area, ux, uy) in enumerate(_unit_shape_moments(num_classes)):
            radius = np.sqrt(area / unit_area)
            template = _shape(SHAPES[k], (x - mx) / radius + ux, (y - my) / radius + uy)
            scores[i, k] = (template & mask).sum() / (template | mask).sum()
    return scores.argmax(axis=1)


def stylized_shapes(n_per_class: int = 512, image_size: int = 32, num_classes: int = 4, difficulty: int = 60,
                    seed: int = 0) -> tuple[DatasetIndex, np.ndarray]:
    """Shapes whose fill and background are independent random textures (see ``stylized_shapes_with_masks``)."""
    return stylized_shapes_with_masks(n_per_class, image_size, num_classes, difficulty, seed)[:2]


def stylized_shapes_with_masks(n_per_class: int, image_size: int, num_classes: int, difficulty: int,
                               seed: int) -> tuple[DatasetIndex, np.ndarray, np.ndarray]:
    """Shapes whose fill and background are independent random textures.

    The fill is brighter than the background, by 0.18 to 0.42; ``difficulty`` scales their
    textures (random tint, contrast and gratings), the nuisance, from flat colours at 0 to full
    strength at 100. The masks come back too, for checks of
    the class definition.
    """
    _check_options("stylized_shapes", num_classes, len(SHAPES), difficulty)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    n = len(labels)
    masks = shape_masks(labels, image_size, rng)

    strength = difficulty / 100

    def texture(brightness: np.ndarray) -> np.ndarray:
        tint = brightness[:, None] + strength * rng.uniform(-0.12, 0.12, (n, 3))
        contrast = strength * rng.uniform(0.04, 0.16, (n, 1, 1, 1))
        pattern = _gratings(rng, n, image_size, frequency=(1.5, 5.0), waves=2)[..., None]
        return tint[:, None, None, :] + contrast * pattern

    gap = 0.3 * rng.uniform(0.6, 1.4, n)
    middle = rng.uniform(0.35, 0.65, n)
    images = np.where(masks[..., None], texture(middle + gap / 2), texture(middle - gap / 2))
    index = DatasetIndex(name="stylized_shapes", class_names=list(SHAPES[:num_classes]),
                         labels=labels.astype(np.int64),
                         identity={"generator": GENERATOR_VERSION, "n_per_class": n_per_class,
                                   "image_size": image_size, "num_classes": num_classes,
                                   "difficulty": difficulty, "seed": seed,
                                   "augmentations": sorted(STYLIZED_SHAPES_AUGMENTATIONS)})
    return index, _to_uint8_nchw(images), masks


def digits() -> tuple[DatasetIndex, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images), grey levels repeated on three channels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.repeat(grey[:, None], 3, axis=1)
    index = DatasetIndex(name="digits", class_names=[str(d) for d in bunch.target_names],
                         labels=bunch.target.astype(np.int64),
                         identity={"source": "sklearn.load_digits",
                                   "augmentations": sorted(DIGITS_AUGMENTATIONS)})
    return index, images
