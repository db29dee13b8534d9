"""Model names, keywords, and the errors a bad name or argument gets."""
from __future__ import annotations

import pytest
import torch

from srm_models import InvalidArgumentError, UnknownModelError, create_model, describe_model, list_models
from srm_models.resnet import Bottleneck


def test_names_are_exactly_the_documented_ones():
    expected = set()
    for kind in ("", "se_", "ge_", "srm_", "cbam_", "eca_", "gct_", "simam_"):
        expected |= {f"{kind}resnet{d}" for d in (18, 34, 50, 101, 152)}
        expected |= {f"{kind}cifar_resnet{d}" for d in (20, 32, 56, 110)}
    assert set(list_models()) == expected
    assert list_models() == sorted(expected)
    assert list_models("srm_cifar_*") == ["srm_cifar_resnet110", "srm_cifar_resnet20",
                                          "srm_cifar_resnet32", "srm_cifar_resnet56"]


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UnknownModelError, match=r"unknown model 'srm_resnet51'; valid models: .*srm_resnet50"):
        create_model("srm_resnet51")
    assert issubclass(UnknownModelError, ValueError)


@pytest.mark.parametrize("name, kwargs, message", [
    ("resnet50", {"pooling": "avg"}, r"resnet50 does not take 'pooling'; valid keywords: num_classes, "
                                     r"input_size, in_chans, stride_in_1x1"),
    ("resnet18", {"stride_in_1x1": True}, r"resnet18 does not take 'stride_in_1x1'"),
    ("se_cifar_resnet20", {"block": "basic", "stride_in_1x1": True}, r"does not take 'stride_in_1x1'"),
    ("se_resnet50", {"reductoin": 8}, r"does not take 'reductoin'; valid keywords: .*reduction"),
    ("srm_resnet50", {"pooling": "median"}, r"srm_resnet50: .*pooling='median' is not valid; choose one of"),
    ("cifar_resnet56", {"block": "wide"}, r"block='wide' is not valid; choose one of bottleneck, basic"),
    ("resnet50", {"num_classes": 0}, r"num_classes=0 is not valid; give a positive int"),
    ("resnet50", {"in_chans": "rgb"}, r"in_chans='rgb' is not valid"),
    ("resnet50", {"stride_in_1x1": "yes"}, r"stride_in_1x1='yes' is not valid; give True or False"),
    ("ge_resnet50", {"input_size": (224,)}, r"input_size=\(224,\) is not valid"),
])
def test_bad_arguments_raise_invalid_argument(name, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        with torch.device("meta"):
            create_model(name, **kwargs)


def test_keywords_reach_the_model():
    with torch.device("meta"):
        model = create_model("srm_resnet50", num_classes=7, pooling="avg+max", stride_in_1x1=True,
                             input_size=(96, 128), in_chans=1)
    assert model.fc.out_features == 7 and model.conv1.in_channels == 1
    assert model.input_size == (96, 128)
    assert {m.recalibration.pooling for m in model.modules() if isinstance(m, Bottleneck)} == {"avg+max"}
    first = model.layer2[0]
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)
    with torch.device("meta"):
        default = create_model("resnet50")
    assert default.layer2[0].conv1.stride == (1, 1) and default.layer2[0].conv2.stride == (2, 2)
    assert default.fc.out_features == 1000


def test_cifar_defaults():
    with torch.device("meta"):
        model = create_model("cifar_resnet56")
    assert model.fc.out_features == 10 and model.input_size == (32, 32)
    assert model.block == "bottleneck" and len(model.layer1) == 9 and model.fc.in_features == 256
    with torch.device("meta"):
        basic = create_model("cifar_resnet56", block="basic")
    assert len(basic.layer1) == 9 and basic.fc.in_features == 64


def test_describe_model():
    info = describe_model("srm_cifar_resnet56")
    assert info["family"] == "cifar_resnet" and info["depth"] == 56 and info["recalibration"] == "srm"
    assert info["arguments"]["num_classes"] == 10
    assert info["arguments"]["pooling"] == "avg+std"
    assert "stride_in_1x1" not in describe_model("resnet18")["arguments"]


def test_ge_model_fed_another_size_says_how_to_fix_it():
    model = create_model("ge_cifar_resnet20", block="basic", input_size=16)
    with pytest.raises(ValueError, match="GE was built for 16x16 feature maps but got 32x32; build the "
                                         "model with the input_size you feed it"):
        model(torch.randn(2, 3, 32, 32))
