"""Tiny datasets written in exactly the on-disk layouts the loaders read."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, rng: np.random.Generator, size=(20, 24), value: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8) if value is None else \
        np.full((*size, 3), value, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_class_tree(root: Path, classes: list[str], per_class: int, seed: int = 0, ext: str = "png") -> list[Path]:
    rng = np.random.default_rng(seed)
    return [write_image(root / name / f"{name}_{i}.{ext}", rng, value=40 * c + i)
            for c, name in enumerate(classes) for i in range(per_class)]


def write_cifar10(data_dir: Path, per_batch: int = 6, test: int = 10) -> Path:
    root = data_dir / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in [*[(f"data_batch_{i}", per_batch) for i in range(1, 6)], ("test_batch", test)]:
        labels = [i % 10 for i in range(count)]
        with open(root / name, "wb") as handle:
            pickle.dump({b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), b"labels": labels}, handle)
    with open(root / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle)
    return root


def write_cifar100(data_dir: Path, train: int = 200, test: int = 100) -> Path:
    root = data_dir / "cifar-100-python"
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, count in [("train", train), ("test", test)]:
        with open(root / name, "wb") as handle:
            pickle.dump({b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
                         b"fine_labels": [i % 100 for i in range(count)]}, handle)
    with open(root / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [f"fine{i}".encode() for i in range(100)]}, handle)
    return root


def write_dtd(data_dir: Path, classes=("banded", "bubbly", "cracked"), per_class: int = 5) -> Path:
    root = data_dir / "dtd"
    files = write_class_tree(root / "images", list(classes), per_class, ext="jpg")
    (root / "labels").mkdir()
    (root / "labels" / "train1.txt").write_text(
        "\n".join(f.relative_to(root / "images").as_posix() for f in files) + "\n")
    return root


def write_office_home(data_dir: Path, classes=("Alarm_Clock", "Backpack"), per_class: int = 5) -> Path:
    root = data_dir / "OfficeHomeDataset_10072016"
    for seed, domain in enumerate(("Art", "Clipart", "Product", "Real World")):
        write_class_tree(root / domain, list(classes), per_class, seed=seed, ext="jpg")
    return root


def write_imagenet_like(data_dir: Path, folder: str, classes=("n01440764", "n01443537"),
                        train: int = 6, val: int = 3) -> Path:
    root = data_dir / folder
    write_class_tree(root / "train", list(classes), train, seed=2, ext="JPEG")
    write_class_tree(root / "val", list(classes), val, seed=3, ext="JPEG")
    return root
