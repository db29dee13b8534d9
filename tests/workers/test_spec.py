"""TrialSpec: round trip, labels, model names, content hash."""
from __future__ import annotations

import pytest

from tests.workers.specs import tiny_spec
from workers.spec import TrialSpec


def test_round_trip_and_labels():
    spec = TrialSpec(dataset="dtd", backbone="cifar_resnet56", variant={"kind": "srm", "pooling": "avg+max"},
                     fold=2, n_folds=5, seed=1, protocol="dtd", overrides={"epochs": 2}, job_id="j")
    assert TrialSpec.from_dict(spec.to_dict()) == spec
    assert spec.variant_label() == "srm(pooling=avg+max)" and spec.model_name() == "srm_cifar_resnet56"
    baseline = tiny_spec("baseline")
    assert baseline.variant_label() == "baseline" and baseline.model_name() == "cifar_resnet20"


def test_content_hash_covers_what_determines_the_result():
    spec = tiny_spec("srm", fold=1)
    assert spec.content_hash("fp") == tiny_spec("srm", fold=1, job_id="other-job").content_hash("fp")
    assert spec.content_hash("fp") != spec.content_hash("other-fingerprint")
    assert spec.content_hash("fp") != tiny_spec("srm", fold=2).content_hash("fp")
    assert spec.content_hash("fp") != tiny_spec("srm", fold=1, seed=1).content_hash("fp")
    assert spec.content_hash("fp") != tiny_spec("srm", fold=1, lr=0.01).content_hash("fp")


def test_repeat_zero_keeps_the_hash_of_specs_made_before_repeats_existed():
    """The payload as it was written before `repeat` existed, hashed here by hand."""
    import hashlib
    import json

    from workers.protocols import get_protocol
    from workers.version import code_version

    spec = tiny_spec("srm", fold=1)
    before = {"dataset_fingerprint": "fp", "backbone": "cifar_resnet20", "variant": {"kind": "srm"}, "fold": 1,
              "n_folds": 5, "seed": 0, "protocol_hash": get_protocol("quick", spec.overrides).hash,
              "code_version": code_version()}
    assert spec.repeat == 0
    assert spec.content_hash("fp") == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    repeated = {tiny_spec("srm", fold=1, repeat=r).content_hash("fp") for r in range(3)}
    assert len(repeated) == 3  # each repeat is other work
    assert TrialSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "repeat"}) == spec
    with pytest.raises(ValueError, match="repeat must be an integer >= 0"):
        tiny_spec(repeat=-1)


def test_bad_variant_and_unknown_fields():
    with pytest.raises(ValueError, match="'kind' one of baseline, se, ge, srm, cbam"):
        tiny_spec("eca")
    with pytest.raises(ValueError, match="unknown TrialSpec fields \\['colour'\\]"):
        TrialSpec.from_dict({**tiny_spec().to_dict(), "colour": 1})
