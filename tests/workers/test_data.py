"""Dataset registry and loaders, against tiny fixtures in the real on-disk layouts."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tests.workers import layouts
from workers.data import DatasetError, describe_dataset, generated, list_datasets, load_dataset
from workers.data.generated import stylized_shapes, textures, textures_class_of


def test_list_datasets_reports_what_is_on_disk(data_dir):
    layouts.write_dtd(data_dir)
    present = {info.name: info.present for info in list_datasets(data_dir)}
    assert present["textures"] and present["digits"] and present["stylized_shapes"]
    assert present["dtd"] and not present["cifar10"] and not present["imagenet"]
    office = next(i for i in list_datasets(data_dir) if i.name == "office_home")
    assert office.groups == ["Art", "Clipart", "Product", "Real World"] and "OfficeHome" in office.needs


def test_cifar10_python_batches_with_official_split(data_dir):
    layouts.write_cifar10(data_dir, per_batch=6, test=10)
    summary = describe_dataset("cifar10", data_dir)
    assert (summary.num_samples, summary.num_classes, summary.official_split) == (40, 10, True)
    loaded = load_dataset("cifar10", data_dir, size=32)
    assert loaded.images.shape == (40, 3, 32, 32) and loaded.images.dtype == torch.uint8
    assert loaded.index.is_test.sum() == 10 and loaded.fingerprint == summary.fingerprint


def test_cifar100_fine_labels(data_dir):
    layouts.write_cifar100(data_dir)
    summary = describe_dataset("cifar100", data_dir)
    assert (summary.num_samples, summary.num_classes, summary.min_class_count) == (300, 100, 3)


def test_corrupt_cifar_batch_names_the_file(data_dir):
    root = layouts.write_cifar10(data_dir)
    (root / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3"):
        describe_dataset("cifar10", data_dir)


def test_dtd_and_fingerprint_follows_the_files(data_dir):
    root = layouts.write_dtd(data_dir, per_class=5)
    first = describe_dataset("dtd", data_dir)
    assert (first.num_samples, first.num_classes, first.official_split) == (15, 3, False)
    assert describe_dataset("dtd", data_dir).fingerprint == first.fingerprint
    extra = root / "images" / "banded" / "banded_extra.jpg"
    layouts.write_image(extra, np.random.default_rng(0))
    assert describe_dataset("dtd", data_dir).fingerprint != first.fingerprint


def test_office_home_pools_domains_and_keeps_them_as_groups(data_dir):
    layouts.write_office_home(data_dir, per_class=5)
    summary = describe_dataset("office_home", data_dir)
    assert summary.groups == ["Art", "Clipart", "Product", "Real World"]
    assert (summary.num_samples, summary.num_classes) == (40, 2)
    loaded = load_dataset("office_home", data_dir, size=16)
    assert loaded.in_memory and loaded.images.shape == (40, 3, 16, 16)
    assert np.bincount(loaded.index.group_ids).tolist() == [10, 10, 10, 10]


def test_imagenet_layouts_stream_from_disk(data_dir):
    layouts.write_imagenet_like(data_dir, "imagenet")
    layouts.write_imagenet_like(data_dir, "stylized_imagenet")
    for name in ("imagenet", "stylized_imagenet"):
        summary = describe_dataset(name, data_dir)
        assert (summary.num_samples, summary.num_classes, summary.official_split) == (18, 2, True)
        assert not load_dataset(name, data_dir, size=16).in_memory


def test_imagefolder_inside_data_dir_only(data_dir, tmp_path):
    layouts.write_class_tree(data_dir / "mine", ["a", "b"], 3)
    assert describe_dataset("imagefolder:mine", data_dir).num_samples == 6
    layouts.write_class_tree(tmp_path / "outside", ["a", "b"], 3)
    with pytest.raises(DatasetError, match="outside the data dir"):
        describe_dataset("imagefolder:../outside", data_dir)
    with pytest.raises(DatasetError, match="does not exist"):
        describe_dataset("imagefolder:missing", data_dir)


def test_corrupt_image_file_is_named(data_dir):
    files = layouts.write_class_tree(data_dir / "mine", ["a", "b"], 3)
    files[4].write_bytes(b"\x89PNG truncated")
    with pytest.raises(DatasetError, match=files[4].name):
        load_dataset("imagefolder:mine", data_dir, size=16)


def test_unknown_names_and_missing_data_say_what_is_valid(data_dir):
    with pytest.raises(DatasetError, match="valid: digits, textures"):
        describe_dataset("cifar11", data_dir)
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        describe_dataset("cifar10", data_dir)
    with pytest.raises(DatasetError, match="valid: n_per_class, image_size, num_classes, difficulty, seed"):
        describe_dataset("textures[size=3]", data_dir)
    with pytest.raises(DatasetError, match="must be an integer"):
        describe_dataset("textures[n_per_class=many]", data_dir)


def test_generated_sets_are_seeded_and_sized_by_arguments():
    index_a, pixels_a = textures(n_per_class=5, image_size=16, num_classes=4, seed=3)
    _, pixels_b = textures(n_per_class=5, image_size=16, num_classes=4, seed=3)
    _, pixels_c = textures(n_per_class=5, image_size=16, num_classes=4, seed=4)
    assert pixels_a.shape == (20, 3, 16, 16) and np.array_equal(pixels_a, pixels_b)
    assert not np.array_equal(pixels_a, pixels_c)
    assert np.bincount(index_a.labels).tolist() == [5, 5, 5, 5]
    index, pixels = stylized_shapes(n_per_class=3, image_size=24, num_classes=6)
    assert pixels.shape == (18, 3, 24, 24) and index.class_names[0] == "circle"


def test_textures_classes_differ_only_in_per_channel_style_statistics():
    """At difficulty 0 each class has its own per-channel means and stds, what SRM pools."""
    index, pixels = textures(n_per_class=20, image_size=32, num_classes=16, difficulty=0)
    pixels = pixels.astype(float) / 255
    means, stds = pixels.mean(axis=(2, 3)), pixels.std(axis=(2, 3))

    def bit(b: int) -> np.ndarray:
        return (index.labels >> b) & 1 == 1

    red_minus_blue = means[:, 0] - means[:, 2]
    assert red_minus_blue[bit(0)].min() > red_minus_blue[~bit(0)].max()          # tint
    assert means.mean(axis=1)[bit(1)].min() > means.mean(axis=1)[~bit(1)].max()  # brightness
    assert stds.mean(axis=1)[bit(2)].min() > stds.mean(axis=1)[~bit(2)].max()    # contrast
    red_over_blue = stds[:, 0] / stds[:, 2]
    assert red_over_blue[bit(3)].min() > red_over_blue[~bit(3)].max()            # contrast in red


def test_difficulty_blurs_the_classes_and_changes_the_fingerprint(data_dir, monkeypatch):
    accuracy = []
    for difficulty in (0, 50, 100):
        index, pixels = textures(n_per_class=40, image_size=16, difficulty=difficulty)
        accuracy.append((textures_class_of(pixels) == index.labels).mean())
    assert accuracy[0] == 1.0 and accuracy[0] >= accuracy[1] > accuracy[2] and accuracy[2] < 0.9
    names = ["textures", "textures[difficulty=1]", "stylized_shapes", "stylized_shapes[difficulty=1]"]
    fingerprints = {describe_dataset(name, data_dir).fingerprint for name in names}
    monkeypatch.setattr(generated, "GENERATOR_VERSION", 1)
    fingerprints |= {describe_dataset(name, data_dir).fingerprint for name in names}
    assert len(fingerprints) == 2 * len(names)
    with pytest.raises(DatasetError, match="difficulty must be between 0 and 100"):
        describe_dataset("stylized_shapes[difficulty=101]", data_dir)


def test_digits_is_built_in(tmp_path):
    summary = describe_dataset("digits", tmp_path)
    assert (summary.num_samples, summary.num_classes) == (1797, 10)
    assert load_dataset("digits", tmp_path, size=16).images.shape == (1797, 3, 16, 16)


def test_cifar_labels_out_of_range_are_refused(data_dir):
    root = layouts.write_cifar10(data_dir)
    with open(root / "test_batch", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, handle)
    with pytest.raises(DatasetError, match="labels outside 0..9"):
        describe_dataset("cifar10", data_dir)
