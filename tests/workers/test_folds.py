"""Fold splits: stratified, seeded, disjoint, and identified by the hash of the held-out indices."""
from __future__ import annotations

import numpy as np
import pytest

from tests.workers import layouts
from workers.data import DatasetError, index_dataset
from workers.folds import make_split


def test_five_folds_partition_the_data_stratified_and_repeatably():
    index, _ = index_dataset("textures[n_per_class=10,image_size=8]")
    splits = [make_split(index, 5, fold, seed=0) for fold in range(5)]
    held = np.concatenate([s.held_out for s in splits])
    assert sorted(held.tolist()) == list(range(80))  # every sample held out exactly once
    for split in splits:
        assert not set(split.train) & set(split.held_out)
        assert np.bincount(index.labels[split.held_out]).tolist() == [2] * 8  # stratified
    again = make_split(index, 5, 3, seed=0)
    assert np.array_equal(again.held_out, splits[3].held_out) and again.hash == splits[3].hash
    assert len({s.hash for s in splits}) == 5
    assert make_split(index, 5, 3, seed=1).hash != splits[3].hash


def test_each_repeat_reshuffles_its_own_stratified_partition():
    index, _ = index_dataset("textures[n_per_class=10,image_size=8]")
    repeats = [[make_split(index, 5, fold, seed=0, repeat=r) for fold in range(5)] for r in range(3)]
    assert [s.hash for s in repeats[0]] == [make_split(index, 5, f, seed=0).hash for f in range(5)]  # repeat 0: today's
    for splits in repeats:
        held = np.concatenate([s.held_out for s in splits])
        assert sorted(held.tolist()) == list(range(80))
        assert all(np.bincount(index.labels[s.held_out]).tolist() == [2] * 8 for s in splits)
    hashes = [s.hash for splits in repeats for s in splits]
    assert len(set(hashes)) == 15  # two repeats never share a split
    assert make_split(index, 5, 2, seed=0, repeat=1).hash == repeats[1][2].hash  # and each is repeatable
    assert "repeat 1" in repeats[1][0].description


def test_official_split_when_no_folds_asked(data_dir):
    layouts.write_cifar10(data_dir, per_batch=10, test=10)
    index, _ = index_dataset("cifar10", data_dir)
    split = make_split(index, None, None)
    assert split.description == "official" and len(split.held_out) == 10 and len(split.train) == 50
    pooled = make_split(index, 2, 0)  # folds asked: train and test are pooled
    assert len(pooled.held_out) == 30


def test_no_official_split_holds_out_fold_zero_of_five():
    index, _ = index_dataset("textures[n_per_class=10,image_size=8]")
    assert make_split(index, None, None).hash == make_split(index, 5, 0).hash


def test_bad_fold_arguments_are_explained():
    index, _ = index_dataset("textures[n_per_class=3,image_size=8]")
    with pytest.raises(DatasetError, match="fold must be in 0..n_folds-1"):
        make_split(index, 3, 3)
    with pytest.raises(DatasetError, match="at least 5 samples per class"):
        make_split(index, 5, 0)
    with pytest.raises(DatasetError, match="without a fold"):
        make_split(index, 3, None)
