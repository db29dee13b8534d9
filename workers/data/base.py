"""The shapes every dataset loader returns, and the error they raise."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The training augmentations a protocol can apply (its ``augment`` mode and ``flip``); a
# dataset declares which of them keep its labels (registry ``DatasetEntry.augmentations``).
AUGMENTATIONS = frozenset({"crop", "random_resized_crop", "flip"})


class DatasetError(ValueError):
    """A dataset cannot be used: unknown name, files missing or corrupt, path outside the data dir."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset without reading it (for listings)."""

    name: str
    description: str
    needs: str
    present: bool
    num_classes: int | None
    groups: list[str] | None
    official_split: bool


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset as indexed on disk: counts and fingerprint, read from labels only."""

    name: str
    num_samples: int
    num_classes: int
    min_class_count: int
    groups: list[str] | None
    fingerprint: str
    official_split: bool


@dataclass
class DatasetIndex:
    """Labels (and files, for datasets stored as image files) of a dataset, without pixels.

    ``is_test`` marks the official test split where the dataset has one.
    ``files`` is None for datasets held as arrays (CIFAR batches, generated data).
    """

    name: str
    class_names: list[str]
    labels: np.ndarray
    files: list[Path] | None = None
    root: Path | None = None
    group_names: list[str] | None = None
    group_ids: np.ndarray | None = None
    is_test: np.ndarray | None = None
    identity: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """sha256 over the file list (relative paths and sizes) and labels, so any change shows."""
        digest = hashlib.sha256()
        digest.update(json.dumps({"name": self.name.split("[")[0], **self.identity},
                                 sort_keys=True).encode())
        digest.update(json.dumps(self.class_names).encode())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        if self.group_ids is not None:
            digest.update(np.ascontiguousarray(self.group_ids, dtype=np.int64).tobytes())
        if self.is_test is not None:
            digest.update(np.ascontiguousarray(self.is_test, dtype=np.bool_).tobytes())
        for path in self.files or ():
            relative = path.relative_to(self.root) if self.root else path
            digest.update(f"{relative.as_posix()}:{path.stat().st_size}\n".encode())
        return digest.hexdigest()

    def summary(self) -> DatasetSummary:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return DatasetSummary(
            name=self.name, num_samples=int(len(self.labels)), num_classes=self.num_classes,
            min_class_count=int(counts.min()) if len(counts) else 0,
            groups=list(self.group_names) if self.group_names else None,
            fingerprint=self.fingerprint(), official_split=self.is_test is not None)


@dataclass
class LoadedDataset:
    """A dataset ready for training: pixels in memory (uint8 NCHW) or files to stream.

    Exactly one of ``images`` and ``index.files`` is used for pixels; ``images`` wins when set.
    ``augmentations`` are the training augmentations that keep this dataset's labels.
    """

    index: DatasetIndex
    fingerprint: str
    images: torch.Tensor | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    augmentations: frozenset[str] = AUGMENTATIONS

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def labels(self) -> np.ndarray:
        return self.index.labels

    @property
    def num_classes(self) -> int:
        return self.index.num_classes

    def __len__(self) -> int:
        return len(self.index.labels)
