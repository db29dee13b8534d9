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


def repeat_seed(seed: int, repeat: int) -> int:
    """The shuffle seed of repeat ``repeat``: repeat 0 keeps ``seed`` (the splits, and so the content
    hashes, of runs made before repeats existed); every later repeat draws its own seed from both."""
    if repeat == 0:
        return seed
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def make_split(index: DatasetIndex, n_folds: int | None, fold: int | None, seed: int = 0,
               repeat: int = 0) -> Split:
    """Fold ``fold`` of StratifiedKFold(n_folds, shuffle, seed) on all samples (train and test pooled).

    With no folds asked, the official test split where there is one, otherwise fold 0 of 5.
    The seed is the protocol's fold seed, not the trial seed, so fold i is the same everywhere.
    Repeat r of repeated k-fold reshuffles with its own seed (`repeat_seed`).
    """
    labels = index.labels
    if repeat < 0:
        raise DatasetError(f"repeat must be >= 0; got {repeat}")
    if n_folds is None and fold is None and index.is_test is not None:
        if repeat:
            raise DatasetError("the official split cannot be repeated; give n_folds for repeated k-fold")
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
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=repeat_seed(seed, repeat))
    train, held = list(folds.split(np.zeros(len(labels)), labels))[fold]
    where = f"fold {fold} of {n_folds}" + (f", repeat {repeat}" if repeat else "")
    return Split(train, held, split_hash(held), where)
