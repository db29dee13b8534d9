"""Indexers for datasets in their standard on-disk layouts under the data dir.

Each returns a DatasetIndex (labels, files, groups, official test split) and, for datasets
stored as arrays (CIFAR's python batches), the uint8 NCHW pixels.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from .base import DatasetError, DatasetIndex


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: expected the folder {path}, which does not exist")
    return path


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="bytes")
    except Exception as error:  # any unpickling failure means the file is damaged
        raise DatasetError(f"cannot read {path}: {type(error).__name__}: {error}") from error


def _cifar_arrays(batch: dict, path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (KeyError, ValueError) as error:
        raise DatasetError(f"{path} is not a CIFAR python batch ({error})") from error
    if len(data) != len(labels):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def cifar(data_dir: Path, num_classes: int) -> tuple[DatasetIndex, np.ndarray]:
    """CIFAR-10 (cifar-10-batches-py/) or CIFAR-100 (cifar-100-python/): official train/test."""
    if num_classes == 10:
        root = _require_dir(data_dir / "cifar-10-batches-py", "cifar10")
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file = [root / "test_batch"], root / "batches.meta"
        label_key, names_key = b"labels", b"label_names"
    else:
        root = _require_dir(data_dir / "cifar-100-python", "cifar100")
        train_files, test_files, meta_file = [root / "train"], [root / "test"], root / "meta"
        label_key, names_key = b"fine_labels", b"fine_label_names"
    images, labels, is_test = [], [], []
    for path in train_files + test_files:
        data, targets = _cifar_arrays(_unpickle(path), path, label_key)
        images.append(data)
        labels.append(targets)
        is_test.append(np.full(len(targets), path in test_files))
    class_names = [n.decode() for n in _unpickle(meta_file).get(names_key, [])]
    if len(class_names) != num_classes:
        raise DatasetError(f"{meta_file}: expected {num_classes} class names, found {len(class_names)}")
    labels = np.concatenate(labels)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DatasetError(f"{root}: labels outside 0..{num_classes - 1}")
    index = DatasetIndex(name=f"cifar{num_classes}", class_names=class_names, labels=labels,
                         is_test=np.concatenate(is_test), identity={"layout": root.name})
    return index, np.concatenate(images)


def _class_folders(root: Path, what: str) -> tuple[list[Path], np.ndarray, list[str]]:
    _require_dir(root, what)
    try:
        class_names, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except (FileNotFoundError, OSError) as error:
        raise DatasetError(f"{what}: {error}") from error
    files = [Path(path) for path, _ in samples]
    return files, np.asarray([label for _, label in samples], dtype=np.int64), class_names


def image_folder(root: Path, name: str) -> tuple[DatasetIndex, None]:
    """``<root>/<class>/*`` pooled, or ``<root>/train`` + ``<root>/val`` (or test) as the official split."""
    _require_dir(root, name)
    held_out = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if (root / "train").is_dir() and held_out is not None:
        train_files, train_labels, class_names = _class_folders(root / "train", name)
        test_files, test_labels, test_classes = _class_folders(held_out, name)
        if test_classes != class_names:
            raise DatasetError(f"{name}: {held_out} has classes {test_classes[:5]}... but train/ has "
                               f"{class_names[:5]}...; both must hold the same class folders")
        files, labels = train_files + test_files, np.concatenate([train_labels, test_labels])
        is_test = np.r_[np.zeros(len(train_files), bool), np.ones(len(test_files), bool)]
    else:
        files, labels, class_names = _class_folders(root, name)
        is_test = None
    if not files:
        raise DatasetError(f"{name}: no images found under {root} (extensions: {', '.join(IMG_EXTENSIONS)})")
    return DatasetIndex(name=name, class_names=class_names, labels=labels, files=files, root=root,
                        is_test=is_test), None


def dtd(data_dir: Path) -> tuple[DatasetIndex, None]:
    """DTD's ``dtd/images/<class>/*.jpg``, pooled for k-fold cross-validation (``labels/`` unused)."""
    root = data_dir / "dtd"
    files, labels, class_names = _class_folders(root / "images", "dtd")
    return DatasetIndex(name="dtd", class_names=class_names, labels=labels, files=files, root=root), None


OFFICE_HOME_FOLDERS = ("OfficeHomeDataset_10072016", "office_home")
OFFICE_HOME_DOMAINS = ("Art", "Clipart", "Product", "Real World")


def office_home_root(data_dir: Path) -> Path:
    for folder in OFFICE_HOME_FOLDERS:
        if (data_dir / folder).is_dir():
            return data_dir / folder
    return data_dir / OFFICE_HOME_FOLDERS[0]


def office_home(data_dir: Path) -> tuple[DatasetIndex, None]:
    """Office-Home's ``<domain>/<class>/*``: the four domains pooled, the domain kept as the group."""
    root = _require_dir(office_home_root(data_dir), "office_home")
    domains = [d for d in OFFICE_HOME_DOMAINS if (root / d).is_dir()]
    if not domains:
        raise DatasetError(f"office_home: none of the domain folders {list(OFFICE_HOME_DOMAINS)} "
                           f"found in {root}")
    per_domain = [_class_folders(root / d, "office_home") for d in domains]
    class_names = sorted({c for _, _, names in per_domain for c in names})
    files, labels, groups = [], [], []
    for group_id, (domain_files, domain_labels, names) in enumerate(per_domain):
        remap = np.asarray([class_names.index(c) for c in names], dtype=np.int64)
        files += domain_files
        labels.append(remap[domain_labels])
        groups.append(np.full(len(domain_files), group_id))
    return DatasetIndex(name="office_home", class_names=class_names, labels=np.concatenate(labels),
                        files=files, root=root, group_names=domains,
                        group_ids=np.concatenate(groups)), None
