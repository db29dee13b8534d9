"""no_weight_decay: which tensors land in the optimizer group without weight decay, rule by rule."""
from __future__ import annotations

import pytest
import torch

from srm_models import create_model
from workers.optim import parameter_groups
from workers.protocols import ProtocolError, get_protocol
from workers.trial import make_optimizer


def _names(model, group) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def _groups(name: str, rule: str):
    model = create_model(name, block="basic", input_size=16)
    groups = parameter_groups(model, 5e-4, rule)
    return model, {g["name"]: (g["weight_decay"], _names(model, g)) for g in groups}


def test_none_decays_everything():
    model, groups = _groups("srm_cifar_resnet20", "none")
    assert groups == {"decay": (5e-4, {n for n, _ in model.named_parameters()})}


def test_srm_exempts_only_srm_cfc_and_bn():
    model, groups = _groups("srm_cifar_resnet20", "srm")
    exempt = groups["no_decay"][1]
    # 9 blocks, each SRM with cfc, bn.weight, bn.bias: written out, not derived from the code under test
    expected = {f"layer{s}.{b}.recalibration.{p}" for s in (1, 2, 3) for b in (0, 1, 2)
                for p in ("cfc", "bn.weight", "bn.bias")}
    assert exempt == expected and groups["no_decay"][0] == 0.0
    assert groups["decay"][1] == {n for n, _ in model.named_parameters()} - expected
    assert "layer1.0.bn2.weight" in groups["decay"][1] and "fc.bias" in groups["decay"][1]


@pytest.mark.parametrize("name", ["se_cifar_resnet20", "ge_cifar_resnet20"])
def test_srm_rule_decays_se_and_ge(name):
    _, groups = _groups(name, "srm")
    assert set(groups) == {"decay"}


def test_recalibration_exempts_whatever_sits_in_the_slot():
    model, groups = _groups("se_cifar_resnet20", "recalibration")
    expected = {f"layer{s}.{b}.recalibration.{p}" for s in (1, 2, 3) for b in (0, 1, 2)
                for p in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}
    assert groups["no_decay"][1] == expected


def test_recalibration_norm_bias_adds_every_norm_and_bias():
    model, groups = _groups("se_cifar_resnet20", "recalibration+norm+bias")
    exempt = groups["no_decay"][1]
    assert {"bn1.weight", "bn1.bias", "layer2.0.bn2.weight", "fc.bias", "layer3.2.recalibration.fc1.weight",
            "layer3.2.recalibration.fc2.bias"} <= exempt
    assert groups["decay"][1] == {"conv1.weight", "fc.weight"} | {
        f"layer{s}.{b}.conv{c}.weight" for s in (1, 2, 3) for b in (0, 1, 2) for c in (1, 2)}


def test_protocols_default_and_validation():
    assert get_protocol("cifar").no_weight_decay == "srm" and get_protocol("imagenet").no_weight_decay == "srm"
    assert get_protocol("dtd").no_weight_decay == "srm" and get_protocol("office_home").no_weight_decay == "srm"
    assert get_protocol("quick").no_weight_decay == "none"
    assert get_protocol("cifar").version == 2 and get_protocol("quick").version == 1
    assert get_protocol("quick", {"no_weight_decay": "srm"}).hash != get_protocol("quick").hash
    with pytest.raises(ProtocolError, match="no_weight_decay.*one of none, srm, recalibration, "
                                            "recalibration\\+norm\\+bias"):
        get_protocol("quick", {"no_weight_decay": "bn"})


def test_the_trial_optimizer_uses_the_groups():
    model = create_model("srm_cifar_resnet20", block="basic", input_size=16)
    optimizer = make_optimizer(model, get_protocol("cifar"))
    decays = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    assert decays == {"decay": 1e-4, "no_decay": 0.0}
    cfc = model.layer1[0].recalibration.cfc
    assert any(p is cfc for p in optimizer.param_groups[1]["params"])
    # one SGD step with zero gradients moves decayed weights only
    before = cfc.detach().clone() + 1.0
    with torch.no_grad():
        cfc.copy_(before)
    conv = model.conv1.weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(cfc.detach(), before)
    assert not torch.equal(model.conv1.weight.detach(), conv)
