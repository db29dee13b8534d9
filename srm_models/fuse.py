"""Inference folding: every SRM's BatchNorm merged into its CFC (Sec. 3.2 of the paper)."""
from __future__ import annotations

import copy

from torch import nn

from .layers.srm import SRM


def fuse_for_inference(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return ``model`` in eval mode with each SRM's BN folded into its CFC.

    A folded SRM holds C x 2 CFC weights and C biases (the BN's running statistics and affine
    parameters absorbed), so inference is one affine map and a sigmoid per channel; eval outputs
    equal the unfolded model's up to float rounding. ``inplace=False`` (the default) folds a
    deep copy and leaves ``model`` untouched. Folding discards the BN, so the result is for
    inference only: training it would skip the normalisation the paper trains with.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in model.modules():
        if isinstance(module, SRM):
            module.fold_bn_()
    return model
