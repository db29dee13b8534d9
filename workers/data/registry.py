"""The dataset registry: names, what each needs on disk, and how to index and load it."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .. import paths
from . import disk, generated
from .base import AUGMENTATIONS, DatasetError, DatasetIndex, DatasetInfo, DatasetSummary, LoadedDataset
from .images import decode_all

IndexFn = Callable[[Path, dict], tuple[DatasetIndex, np.ndarray | None]]
IN_MEMORY_LIMIT_BYTES = 4 * 1024 ** 3  # small sets (CIFAR, DTD, Office-Home) fit; ImageNet streams


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    description: str
    needs: str
    build_index: IndexFn
    folder: Callable[[Path], Path] | None = None  # what must exist under the data dir
    num_classes: int | None = None
    groups: tuple[str, ...] | None = None
    official_split: bool = False
    options: tuple[tuple[str, int], ...] = ()  # generator arguments and their defaults
    augmentations: frozenset[str] = AUGMENTATIONS  # the training augmentations that keep its labels

    def present(self, data_dir: Path) -> bool:
        return self.folder is None or self.folder(data_dir).is_dir()


def _gen_options(fn) -> tuple[tuple[str, int], ...]:
    return tuple((p.name, p.default) for p in inspect.signature(fn).parameters.values())


def _imagefolder_root(data_dir: Path, relative: str) -> Path:
    root = (data_dir / relative).resolve()
    if not root.is_relative_to(data_dir.resolve()):
        raise DatasetError(f"imagefolder:{relative} points outside the data dir {data_dir}; "
                           "give a path relative to the data dir, without '..'")
    return root


ENTRIES: dict[str, DatasetEntry] = {e.name: e for e in [
    DatasetEntry("digits", "scikit-learn's bundled 8x8 handwritten digits (1,797 images)",
                 "nothing (bundled with scikit-learn)", lambda d, o: generated.digits(), num_classes=10,
                 augmentations=generated.DIGITS_AUGMENTATIONS),
    DatasetEntry("textures", "generated textures whose class is carried by per-channel style statistics "
                 "(each channel's mean and std) under random content", "nothing (generated, seeded)",
                 lambda d, o: generated.textures(**o), num_classes=8,
                 options=_gen_options(generated.textures), augmentations=generated.TEXTURES_AUGMENTATIONS),
    DatasetEntry("stylized_shapes", "generated shapes filled with random textures as a style nuisance",
                 "nothing (generated, seeded)", lambda d, o: generated.stylized_shapes(**o), num_classes=4,
                 options=_gen_options(generated.stylized_shapes),
                 augmentations=generated.STYLIZED_SHAPES_AUGMENTATIONS),
    DatasetEntry("cifar10", "CIFAR-10, official 50k train / 10k test split",
                 "cifar-10-batches-py/ (the python batches)", lambda d, o: disk.cifar(d, 10),
                 folder=lambda d: d / "cifar-10-batches-py", num_classes=10, official_split=True),
    DatasetEntry("cifar100", "CIFAR-100, official 50k train / 10k test split",
                 "cifar-100-python/ (the python batches)", lambda d, o: disk.cifar(d, 100),
                 folder=lambda d: d / "cifar-100-python", num_classes=100, official_split=True),
    DatasetEntry("dtd", "Describable Textures Dataset, 47 classes, pooled for k-fold CV",
                 "dtd/images/<class>/*.jpg", lambda d, o: disk.dtd(d),
                 folder=lambda d: d / "dtd" / "images", num_classes=47),
    DatasetEntry("office_home", "Office-Home, 4 domains pooled, per-domain accuracy reported",
                 "OfficeHomeDataset_10072016/<domain>/<class>/* (or office_home/...)",
                 lambda d, o: disk.office_home(d), folder=disk.office_home_root, num_classes=65,
                 groups=disk.OFFICE_HOME_DOMAINS),
    DatasetEntry("imagenet", "ImageNet-1K, official train/val split (streamed from disk)",
                 "imagenet/train/<wnid>/* and imagenet/val/<wnid>/*",
                 lambda d, o: disk.image_folder(d / "imagenet", "imagenet"),
                 folder=lambda d: d / "imagenet", num_classes=1000, official_split=True),
    DatasetEntry("stylized_imagenet", "Stylized-ImageNet, official train/val split (streamed from disk)",
                 "stylized_imagenet/train/<wnid>/* and stylized_imagenet/val/<wnid>/*",
                 lambda d, o: disk.image_folder(d / "stylized_imagenet", "stylized_imagenet"),
                 folder=lambda d: d / "stylized_imagenet", num_classes=1000, official_split=True),
]}
IMAGEFOLDER = "imagefolder:"


def _resolve_data_dir(data_dir) -> Path:
    return Path(data_dir).expanduser().resolve() if data_dir else paths.data_dir()


def parse_name(name: str) -> tuple[DatasetEntry, dict]:
    """``textures`` or ``textures[n_per_class=32,image_size=16]`` -> (entry, generator options)."""
    if not isinstance(name, str) or not name:
        raise DatasetError(f"dataset name must be a non-empty string, got {name!r}")
    base, _, rest = name.partition("[")
    entry = ENTRIES.get(base)
    if entry is None:
        valid = ", ".join([*ENTRIES, "imagefolder:<path relative to the data dir>"])
        raise DatasetError(f"unknown dataset {name!r}; valid: {valid}")
    if not rest:
        return entry, {}
    if not entry.options or not rest.endswith("]"):
        raise DatasetError(f"dataset {base!r} takes no options in [...]" if not entry.options else
                           f"dataset {name!r}: options must look like {base}[key=value,...]")
    defaults, options = dict(entry.options), {}
    for item in filter(None, rest[:-1].split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise DatasetError(f"dataset {base!r}: unknown option {key!r}; valid: {', '.join(defaults)}")
        try:
            options[key] = int(value)
        except ValueError:
            raise DatasetError(f"dataset {base!r}: option {key} must be an integer, got {value!r}") from None
        if options[key] < (0 if key in ("seed", "difficulty") else 1):
            raise DatasetError(f"dataset {base!r}: option {key} must be "
                               f"{'>= 0' if key in ('seed', 'difficulty') else 'positive'}, got {options[key]}")
    return entry, options


def augmentations_of(name: str) -> frozenset[str]:
    """The training augmentations that keep the labels of dataset ``name`` (all, for image folders)."""
    if isinstance(name, str) and name.startswith(IMAGEFOLDER):
        return AUGMENTATIONS
    return parse_name(name)[0].augmentations


def index_dataset(name: str, data_dir=None) -> tuple[DatasetIndex, np.ndarray | None]:
    """Labels and files of a dataset (and pixels, for array-stored ones); keeps the given name."""
    data_dir = _resolve_data_dir(data_dir)
    if isinstance(name, str) and name.startswith(IMAGEFOLDER):
        relative = name[len(IMAGEFOLDER):]
        if not relative:
            raise DatasetError("imagefolder: needs a path relative to the data dir, e.g. imagefolder:my_set")
        index, arrays = disk.image_folder(_imagefolder_root(data_dir, relative), name)
    else:
        entry, options = parse_name(name)
        if not entry.present(data_dir):
            raise DatasetError(f"dataset {name!r} is not on disk: it needs {entry.needs} under "
                               f"the data dir {data_dir}")
        index, arrays = entry.build_index(data_dir, options)
    index.name = name
    if len(index.labels) == 0:
        raise DatasetError(f"dataset {name!r} has no samples")
    return index, arrays


def list_datasets(data_dir=None) -> list[DatasetInfo]:
    """Every registered dataset, with whether it is usable here (``present``)."""
    data_dir = _resolve_data_dir(data_dir)
    infos = [DatasetInfo(name=e.name, description=e.description, needs=e.needs,
                         present=e.present(data_dir), num_classes=e.num_classes,
                         groups=list(e.groups) if e.groups else None, official_split=e.official_split)
             for e in ENTRIES.values()]
    infos.append(DatasetInfo(name="imagefolder:<path>", description="any ImageFolder tree "
                             "(<class>/* or train/<class>/* + val/<class>/*) under the data dir",
                             needs="<path>/<class>/* relative to the data dir", present=False,
                             num_classes=None, groups=None, official_split=False))
    return infos


def describe_dataset(name: str, data_dir=None) -> DatasetSummary:
    """Counts and fingerprint from the labels and file list; no image is decoded."""
    index, _ = index_dataset(name, data_dir)
    return index.summary()


def load_dataset(name: str, data_dir=None, *, size: int, in_memory: str = "auto",
                 num_workers: int = 0) -> LoadedDataset:
    """A dataset ready for a trial: small ones decoded to ``size``-pixel uint8 squares in memory."""
    index, arrays = index_dataset(name, data_dir)
    fingerprint = index.fingerprint()
    if arrays is not None:
        images = torch.from_numpy(arrays)
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images.float(), size=(size, size), mode="bilinear",
                                   antialias=True, align_corners=False).round().clamp(0, 255).byte()
        return LoadedDataset(index=index, fingerprint=fingerprint, images=images,
                             augmentations=augmentations_of(name))
    fits = len(index.labels) * 3 * size * size <= IN_MEMORY_LIMIT_BYTES
    if in_memory == "always" or (in_memory == "auto" and fits and index.name not in
                                 ("imagenet", "stylized_imagenet")):
        return LoadedDataset(index=index, fingerprint=fingerprint, augmentations=augmentations_of(name),
                             images=decode_all(index.files, size, num_workers))
    return LoadedDataset(index=index, fingerprint=fingerprint, augmentations=augmentations_of(name))
