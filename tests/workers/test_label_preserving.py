"""Every protocol's training augmentation keeps the class of every generated image.

The class is re-derived from the augmented pixels by the generator's own definition
(``textures_class_of``: the nearest class style of the per-channel means and stds;
``shapes_class_of``: the shape that best overlaps the augmented mask), at difficulty 0,
where that definition is exact before augmentation.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.data import generated
from workers.data.augment import DeviceAugment, label_safe
from workers.data.base import IMAGENET_MEAN, IMAGENET_STD
from workers.data.registry import augmentations_of
from workers.protocols import PROTOCOLS

GENERATED = ("textures", "stylized_shapes")


def augment_geometry(images: np.ndarray, protocol, mode: str, flip: bool, seed: int) -> np.ndarray:
    """The protocol's random crop and flip (``mode``, ``flip``) applied to uint8 NCHW arrays."""
    augment = DeviceAugment(mode, protocol.image_size, protocol.padding, flip, IMAGENET_MEAN, IMAGENET_STD,
                            torch.device("cpu"))
    out = augment.geometric(torch.from_numpy(images), torch.Generator().manual_seed(seed))
    return out.float().round().clamp(0, 255).byte().numpy()


def textures_kept(protocol, mode: str, flip: bool, seed: int) -> np.ndarray:
    """Per image: is its class, from the augmented pixels, still its label?"""
    index, pixels = generated.textures(n_per_class=4, image_size=protocol.stored_size(), difficulty=0, seed=seed)
    assert np.array_equal(generated.textures_class_of(pixels), index.labels)  # exact before augmenting
    augmented = augment_geometry(pixels, protocol, mode, flip, seed)
    return generated.textures_class_of(augmented) == index.labels


def shapes_kept(protocol, mode: str, flip: bool, seed: int) -> np.ndarray:
    """Per image whose mask the definition classifies right: is its augmented mask still that shape?"""
    index, pixels, masks = generated.stylized_shapes_with_masks(
        n_per_class=5, image_size=protocol.stored_size(), num_classes=len(generated.SHAPES), difficulty=0,
        seed=seed)
    as_channel = (masks[:, None] * 255).astype(np.uint8)
    augmented = augment_geometry(np.concatenate([pixels, as_channel], axis=1), protocol, mode, flip, seed)
    exact = generated.shapes_class_of(masks, len(generated.SHAPES)) == index.labels
    kept = generated.shapes_class_of(augmented[:, 3] >= 128, len(generated.SHAPES)) == index.labels
    return kept[exact]


KEPT = {"textures": textures_kept, "stylized_shapes": shapes_kept}


@pytest.mark.parametrize("protocol_name", list(PROTOCOLS))
@pytest.mark.parametrize("dataset", GENERATED)
def test_every_protocol_keeps_every_generated_class(dataset, protocol_name):
    protocol = PROTOCOLS[protocol_name]
    mode, flip = label_safe(protocol.augment, protocol.flip, augmentations_of(dataset))
    kept = np.concatenate([KEPT[dataset](protocol, mode, flip, seed) for seed in (0, 1)])
    assert len(kept) >= 50 and kept.all(), f"{dataset} under {protocol_name}: {int((~kept).sum())} changed class"


@pytest.mark.parametrize("dataset, protocol_name", [("textures", "quick"), ("textures", "imagenet"),
                                                     ("stylized_shapes", "imagenet")])
def test_the_augmentations_a_dataset_leaves_out_would_change_its_classes(dataset, protocol_name):
    """The check above can fail: the protocol's full augmentation moves classes it is kept from."""
    protocol = PROTOCOLS[protocol_name]
    assert label_safe(protocol.augment, protocol.flip, augmentations_of(dataset)) != (protocol.augment,
                                                                                       protocol.flip)
    kept = np.concatenate([KEPT[dataset](protocol, protocol.augment, protocol.flip, seed) for seed in (0, 1)])
    assert not kept.all()


def test_label_safe_drops_only_what_a_dataset_does_not_keep():
    assert label_safe("crop", True, frozenset({"flip"})) == ("none", True)
    assert label_safe("random_resized_crop", True, frozenset({"crop"})) == ("none", False)
    assert label_safe("crop", True, frozenset({"crop", "flip"})) == ("crop", True)
    assert label_safe("none", False, frozenset()) == ("none", False)


def test_digits_are_never_mirrored_and_disk_sets_keep_every_augmentation():
    """A mirrored digit is not a digit; real photographs keep theirs under crops and flips."""
    for protocol in PROTOCOLS.values():
        assert not label_safe(protocol.augment, protocol.flip, augmentations_of("digits"))[1]
    assert augmentations_of("cifar10") == augmentations_of("imagefolder:mine") == {
        "crop", "random_resized_crop", "flip"}


def test_a_trial_applies_only_the_augmentations_its_dataset_keeps(data_dir):
    from workers.data import load_dataset
    from workers.protocols import get_protocol
    from workers.trial import _batches_for

    quick = get_protocol("quick")
    expected = {"textures[n_per_class=2,image_size=16]": ("none", True),
                "stylized_shapes[n_per_class=2,image_size=16]": ("crop", True), "digits": ("crop", False)}
    for name, (mode, flip) in expected.items():
        batches = _batches_for(load_dataset(name, data_dir, size=16), quick, torch.device("cpu"))
        assert (batches.augment.mode, batches.augment.flip) == (mode, flip), name
