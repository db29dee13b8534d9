"""Parameter and MAC counts against Tables 1 and 2 of the SRM paper (models built on meta: no compute)."""
from __future__ import annotations

import pytest
import torch

from srm_models import InvalidArgumentError, complexity, create_model


def count(name: str, input_size: int, **kwargs):
    with torch.device("meta"):
        model = create_model(name, input_size=input_size, **kwargs)
    return complexity(model, input_size)


TABLE_1_PARAMS = {  # model -> millions of parameters, as printed in Table 1
    "resnet50": 25.56, "se_resnet50": 28.09, "ge_resnet50": 31.12, "srm_resnet50": 25.62,
    "resnet101": 44.55, "se_resnet101": 49.33, "ge_resnet101": 53.58, "srm_resnet101": 44.68,
}


@pytest.mark.parametrize("name", sorted(TABLE_1_PARAMS))
def test_table1_params(name):
    assert round(count(name, 224).params / 1e6, 2) == TABLE_1_PARAMS[name]


# Exact counts behind the rounded Table 1 values, so that a change of one parameter shows up.
EXACT_PARAMS = {
    "resnet50": 25_557_032, "se_resnet50": 28_088_024, "ge_resnet50": 31_121_704,
    "srm_resnet50": 25_617_448, "resnet101": 44_549_160, "srm_resnet101": 44_679_208,
    # the ECA, GCT and SimAM papers' ResNet-50 counts (1000 classes)
    "eca_resnet50": 25_557_118, "gct_resnet50": 25_602_344, "simam_resnet50": 25_557_032,
}


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_exact_params(name):
    assert count(name, 224).params == EXACT_PARAMS[name]


def test_srm_overhead_is_four_trainable_per_channel():
    """Sec. 3.3: CFC (2C) + BN affine (2C) trainable per block; ResNet-50 has sum N_s C_s = 15104."""
    blocks_channels = 3 * 256 + 4 * 512 + 6 * 1024 + 3 * 2048
    assert count("srm_resnet50", 224).params - count("resnet50", 224).params == 4 * blocks_channels


@pytest.mark.parametrize("name, stride_in_1x1, gmacs", [
    ("resnet50", True, 3.86), ("resnet101", True, 7.58), ("resnet152", True, 11.30),
    ("resnet50", False, 4.09),
])
def test_table1_gmacs(name, stride_in_1x1, gmacs):
    assert round(count(name, 224, stride_in_1x1=stride_in_1x1).gmacs, 2) == gmacs


def test_resnet50_mac_breakdown():
    counted = count("resnet50", 224, stride_in_1x1=True)
    assert counted.breakdown == {"conv": 3_855_925_248, "linear": 2_048_000, "residual_add": 5_519_360}
    assert counted.macs == sum(counted.breakdown.values())
    assert counted.input_size == (3, 224, 224)


@pytest.mark.parametrize("name, params_c10, params_c100", [
    ("cifar_resnet56", 0.87, 0.89), ("se_cifar_resnet56", 0.97, 0.99),
    ("ge_cifar_resnet56", 1.91, 1.94), ("srm_cifar_resnet56", 0.89, 0.91),
])
def test_table2_params(name, params_c10, params_c100):
    assert round(count(name, 32).params / 1e6, 2) == params_c10
    assert round(count(name, 32, num_classes=100).params / 1e6, 2) == params_c100


def test_cifar_exact_params():
    assert count("cifar_resnet56", 32).params == 869_530
    assert count("srm_cifar_resnet56", 32).params == 869_530 + 4 * 9 * (64 + 128 + 256)
    # He et al.'s basic-block ResNet-56 (option A shortcuts): the well-known 0.85M.
    assert count("cifar_resnet56", 32, block="basic").params == 853_018


def test_ge_params_follow_the_input_size():
    """GE-θ's kernels span the map, so a smaller input gives fewer parameters; others don't care."""
    assert count("ge_cifar_resnet20", 16).params < count("ge_cifar_resnet20", 32).params
    assert count("srm_cifar_resnet20", 16).params == count("srm_cifar_resnet20", 32).params


def test_counts_a_real_model_and_keeps_its_mode():
    model = create_model("srm_cifar_resnet20", block="basic")
    model.train()
    counted = complexity(model)  # defaults to the size the model was built for
    assert counted.input_size == (3, 32, 32)
    assert counted.macs == complexity(model, (2, 3, 32, 32)).macs
    assert model.training


@pytest.mark.parametrize("bad", [0, (32,), (3, -1, 32), "32", (1, 2, 3, 4, 5)])
def test_bad_input_size(bad):
    model = create_model("cifar_resnet20", block="basic")
    with pytest.raises(InvalidArgumentError, match="input_size"):
        complexity(model, bad)
