"""Train/held-out splits: k-fold CV on the pooled data, or the dataset's official test split."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .data.base import DatasetError, DatasetIndex

HOLDOUT_FOLDS = 5  # a dataset with no official split and no folds asked for holds out fold 0 of 5


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    held_out: np.ndarray
    hash: str
    description: str


def split_hash(held_out: np.ndarray) -> str:
    """sha256 of the sorted held-out indices: equal hashes mean the same files were held out."""
    return hashlib.sha256(np.sort(held_out).astype(np.int64).tobytes()).hexdigest()


def make_split(index: DatasetIndex, n_folds: int | None, fold: int | None, seed: int = 0) -> Split:
    """Fold ``fold`` of StratifiedKFold(n_folds, shuffle, seed) on all samples (train and test pooled).

    With no folds asked, the official test split where there is one, otherwise fold 0 of 5.
    The seed is the protocol's fold seed, not the trial seed, so fold i is the same everywhere.
    """
    labels = index.labels
    if n_folds is None and fold is None and index.is_test is not None:
        held = np.flatnonzero(index.is_test)
        return Split(np.flatnonzero(~index.is_test), held, split_hash(held), "official")
    if n_folds is None:
        n_folds, fold = HOLDOUT_FOLDS, fold or 0
    if fold is None:
        raise DatasetError(f"n_folds={n_folds} given without a fold; give fold in 0..{n_folds - 1}")
    if n_folds < 2 or not 0 <= fold < n_folds:
        raise DatasetError(f"fold must be in 0..n_folds-1 with n_folds >= 2; got fold={fold}, n_folds={n_folds}")
    present = np.bincount(labels)
    smallest = int(present[present > 0].min()) if len(labels) else 0
    if smallest < n_folds:
        raise DatasetError(f"{index.name}: {n_folds}-fold CV needs at least {n_folds} samples per class; "
                           f"the smallest class has {smallest}")
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, held = list(folds.split(np.zeros(len(labels)), labels))[fold]
    return Split(train, held, split_hash(held), f"fold {fold} of {n_folds}")
