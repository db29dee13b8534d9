"""fuse_for_inference folds every SRM's BN into its CFC; eval outputs do not change."""
from __future__ import annotations

import pytest
import torch

from srm_models import create_model, fuse_for_inference
from srm_models.layers.srm import SRM

from test_srm import randomised  # this folder is on sys.path under pytest (no __init__.py)


def _trained_a_little(model: torch.nn.Module) -> torch.nn.Module:
    """Give every SRM non-trivial CFC/BN parameters and running statistics."""
    for i, module in enumerate(m for m in model.modules() if isinstance(m, SRM)):
        randomised(module, seed=i)
    return model.eval()


def test_folded_model_equals_unfolded_model():
    model = _trained_a_little(create_model("srm_cifar_resnet20", num_classes=10))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        folded = fuse_for_inference(model)
        got = folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    srms = [m for m in folded.modules() if isinstance(m, SRM)]
    assert len(srms) == 9
    for srm in srms:
        assert srm.bn is None and srm.folded
        assert srm.cfc.shape == (srm.channels, 2) and srm.bias.shape == (srm.channels,)
    # the original keeps its BNs (inplace=False folds a copy)
    assert all(m.bn is not None for m in model.modules() if isinstance(m, SRM))


@pytest.mark.parametrize("pooling, integration", [("avg+std", "cfc+bn"), ("avg", "cfc+bn"),
                                                  ("avg+max", "cfc+bn"), ("avg+std", "mlp+bn"),
                                                  ("avg+std", "cfc")])
def test_folding_each_integration_keeps_eval_outputs(pooling, integration):
    srm = _trained_a_little(SRM(16, pooling=pooling, integration=integration))
    x = torch.randn(3, 16, 6, 6)
    with torch.no_grad():
        expected = srm(x)
        folded = fuse_for_inference(srm)
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-6)
    assert folded.bn is None
    assert "folded=True" in repr(folded) or integration == "cfc"


def test_eval_path_of_unfolded_srm_uses_the_folded_form():
    """In eval mode the BN is folded on the fly: no BatchNorm call, same numbers."""
    srm = _trained_a_little(SRM(8))
    calls = []
    srm.bn.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 8, 4, 4)
    out = srm(x)
    assert not calls
    with torch.no_grad():
        folded = fuse_for_inference(srm)(x)
    torch.testing.assert_close(out, folded)
