"""The paper's protocols, overrides and their validation."""
from __future__ import annotations

import pytest

from workers.protocols import ProtocolError, get_protocol, list_protocols


def test_paper_protocols():
    protocols = list_protocols()
    assert set(protocols) == {"imagenet", "cifar", "dtd", "office_home", "quick"}
    cifar = protocols["cifar"]
    assert (cifar.iterations, cifar.lr, cifar.batch_size, cifar.momentum, cifar.weight_decay) == \
        (64_000, 0.2, 128, 0.9, 1e-4)
    assert [round(f * cifar.iterations) for f in cifar.lr_milestones] == [32_000, 48_000]
    imagenet = protocols["imagenet"]
    assert (imagenet.epochs, imagenet.batch_size, imagenet.lr, imagenet.image_size) == (90, 256, 0.1, 224)
    assert [round(f * 90) for f in imagenet.lr_milestones] == [30, 60]
    assert imagenet.stored_size() == 256  # eval: resize 256, centre crop 224
    assert protocols["office_home"].batch_size == 64 and protocols["office_home"].epochs == 90
    assert protocols["dtd"].iterations == 64_000 and protocols["dtd"].lr == 0.2
    assert imagenet.amp and imagenet.channels_last


def test_overrides_apply_and_change_the_hash():
    base = get_protocol("cifar")
    short = get_protocol("cifar", {"epochs": 3, "batch_size": 64, "lr": 0.05, "image_size": 16})
    assert (short.epochs, short.iterations, short.batch_size, short.lr, short.image_size) == (3, None, 64, 0.05, 16)
    assert short.hash != base.hash
    assert get_protocol("cifar", {"epochs": 3}).hash == get_protocol("cifar", {"epochs": 3}).hash
    assert get_protocol("cifar", {}).hash == base.hash
    assert get_protocol("imagenet", {"iterations": 10}).epochs is None


@pytest.mark.parametrize("overrides, message", [
    ({"epoch": 3}, "unknown protocol field 'epoch'; valid fields: epochs"),
    ({"batch_size": 1}, "'batch_size': 1 is not valid with BatchNorm"),
    ({"batch_size": "big"}, "'batch_size': 'big' is not valid; expected an integer"),
    ({"lr": 0}, "'lr': 0.0 is not valid; expected a number > 0"),
    ({"augment": "mixup"}, "expected one of crop, random_resized_crop, none"),
    ({"epochs": 2, "iterations": 5}, "either 'epochs' or 'iterations'"),
    ({"lr_milestones": [0.5, 2]}, "fractions of the training budget"),
    ({"amp": "yes"}, "expected true or false"),
    ({"version": 2}, "unknown protocol field 'version'"),
])
def test_bad_overrides_name_the_field_and_what_is_valid(overrides, message):
    with pytest.raises(ProtocolError, match=message):
        get_protocol("cifar", overrides)


def test_unknown_protocol():
    with pytest.raises(ProtocolError, match="valid: imagenet, cifar, dtd, office_home, quick"):
        get_protocol("cifar10")
