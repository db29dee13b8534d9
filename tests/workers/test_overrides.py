"""`field=value` reads the same in `srm-bench submit --override` and `python -m workers --set`."""
from __future__ import annotations

import pytest

from service.cli import _parse_override, _parse_variant
from workers.__main__ import _override
from workers.protocols import get_protocol


@pytest.mark.parametrize(("text", "expected"), [
    ("lr=1e-3", ("lr", 0.001)), ("epochs=2", ("epochs", 2)), ("flip=false", ("flip", False)),
    ("lr_milestones=[0.5, 0.75]", ("lr_milestones", [0.5, 0.75])), ("iterations=null", ("iterations", None)),
    ("augment=crop", ("augment", "crop")), ("no_weight_decay=recalibration+norm+bias",
                                            ("no_weight_decay", "recalibration+norm+bias")),
])
def test_cli_and_worker_parse_alike(text, expected):
    assert _parse_override(text) == _override(text) == expected


def test_a_parsed_lr_is_a_valid_protocol_override():
    assert get_protocol("quick", dict([_parse_override("lr=1e-3")])).lr == 0.001


def test_variant_options_use_the_same_parser():
    assert _parse_variant("srm:pooling=avg+max,eps=1e-3") == {"kind": "srm", "pooling": "avg+max", "eps": 0.001}


def test_a_value_without_a_field_is_refused():
    with pytest.raises(ValueError, match="--override takes field=value"):
        _parse_override("epochs")
