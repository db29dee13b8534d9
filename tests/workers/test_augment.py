"""Device-side augmentation on uint8 batches."""
from __future__ import annotations

import torch

from workers.data.augment import DeviceAugment, center_crop, random_crop, random_flip, random_resized_crop


def test_random_crop_takes_windows_of_the_padded_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8)
    crops = random_crop(images, 8, padding=2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2,) * 4)
    for i in range(2):
        windows = [padded[i, :, top:top + 8, left:left + 8] for top in range(5) for left in range(5)]
        assert any(torch.equal(crops[i], w) for w in windows)
    again = random_crop(images, 8, padding=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)


def test_flip_mirrors_some_and_keeps_others():
    images = torch.arange(64 * 3 * 4 * 4, dtype=torch.uint8).reshape(64, 3, 4, 4)
    flipped = random_flip(images, torch.Generator().manual_seed(1))
    mirrored = [torch.equal(flipped[i], images[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(flipped[i], images[i]) for i in range(64)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and 10 < sum(mirrored) < 54


def test_random_resized_crop_and_center_crop_shapes():
    images = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    assert random_resized_crop(images, 12, torch.Generator().manual_seed(0)).shape == (4, 3, 12, 12)
    assert torch.equal(center_crop(images, 16), images[..., 2:18, 2:18])


def test_normalisation_matches_mean_and_std():
    augment = DeviceAugment("crop", 8, 0, False, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    images = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    assert torch.allclose(augment.eval(images), torch.full((2, 3, 8, 8), 2.0))
    assert augment.train(images, torch.Generator().manual_seed(0)).shape == (2, 3, 8, 8)
