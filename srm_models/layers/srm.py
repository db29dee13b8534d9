"""Style-based Recalibration Module (SRM), with the pooling and integration ablations.

The paper's SRM (``avg+std`` pooling, ``cfc`` / ``cfc+bn`` integration, and the ``avg`` and
``std`` pooling ablations) runs through the fused op in ``srm_models.ops``; the other ablations,
and everything under ``srm_models.ops.use_reference()``, run the reference formulation below.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import ops
from ..errors import InvalidArgumentError
from ..ops.gate import gate_logits
from .base import Recalibration

POOLINGS = ("avg+std", "avg", "std", "max", "avg+max")
INTEGRATIONS = ("cfc+bn", "cfc", "mlp", "mlp+bn")
FUSED_POOLINGS = ("avg+std", "avg", "std")
FUSED_INTEGRATIONS = ("cfc+bn", "cfc")


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise InvalidArgumentError(
            f"SRM {name}={value!r} is not valid; choose one of {', '.join(valid)}")
    return value


def style_pool(x: torch.Tensor, pooling: str = "avg+std", *, unbiased: bool = True,
               eps: float = 1e-5) -> torch.Tensor:
    """Per-channel style features T of shape (N, C, d), eqs. (1)-(3).

    The standard deviation is ``sqrt(var + eps)``; with ``unbiased`` the variance divides by
    ``H*W - 1``, except on a 1x1 map where it is 0 (one value has no spread, not an undefined one).
    """
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    features = []
    for part in pooling.split("+"):
        if part == "avg":
            features.append(flat.mean(dim=2))
        elif part == "std":
            correction = 1 if (unbiased and flat.shape[2] > 1) else 0
            var = flat.var(dim=2, correction=correction)
            features.append((var + eps).sqrt())
        elif part == "max":
            features.append(flat.amax(dim=2))
    return torch.stack(features, dim=2)


class SRM(Recalibration):
    """Style-based recalibration: style pooling, channel-wise integration, sigmoid gate, x * g.

    Args:
        channels: number of channels C of the input.
        pooling: style features per channel: ``avg+std`` (the paper's SRM), or an ablation of
            Table 6: ``avg``, ``std``, ``max``, ``avg+max``.
        integration: ``cfc+bn`` (the paper's SRM), or an ablation of Table 7: ``cfc`` (with a
            bias, since no BN absorbs it), ``mlp`` / ``mlp+bn`` (SE's two-layer MLP, reduction
            ``reduction``, over the style features concatenated along the channel axis).
        unbiased_std: eq. (2) divides by H*W; the authors' released code (which produced the
            published numbers) uses ``Tensor.var``'s unbiased H*W-1. We default to the released
            code so that trained results are comparable to the paper's tables. On a 1x1 map
            both give variance 0 (one value has no spread) instead of the 0/0 of H*W-1.
        eps: added to the variance before the square root, as in the released code; keeps the
            gradient of the std finite on constant feature maps (std of one value = sqrt(eps)).

    The CFC weights start at zero, as in the authors' code: every gate starts at sigmoid(BN(0)).
    In eval mode the BN is folded into the CFC on the fly (Sec. 3.2), so inference runs one
    C x 2 affine map per channel; ``srm_models.fuse_for_inference`` makes the fold permanent.
    Training needs a batch of at least 2 (BN normalises over the batch).
    """

    has_channel_gate = True

    def __init__(self, channels: int, pooling: str = "avg+std", integration: str = "cfc+bn",
                 unbiased_std: bool = True, eps: float = 1e-5, reduction: int = 16) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise InvalidArgumentError(f"SRM channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.pooling = _check_choice("pooling", pooling, POOLINGS)
        self.integration = _check_choice("integration", integration, INTEGRATIONS)
        self.unbiased_std = unbiased_std
        self.eps = eps
        d = len(pooling.split("+"))
        uses_bn = integration.endswith("+bn")
        if integration.startswith("cfc"):
            self.cfc = nn.Parameter(torch.zeros(channels, d))
            self.bias = None if uses_bn else nn.Parameter(torch.zeros(channels))
            self.mlp = None
        else:
            self.cfc = None
            self.bias = None
            hidden = max(channels // reduction, 1)
            self.mlp = nn.Sequential(nn.Linear(d * channels, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, channels))
        self.bn = nn.BatchNorm1d(channels) if uses_bn else None
        self.folded = False  # set by fuse_for_inference

    def extra_repr(self) -> str:
        folded = ", folded=True" if self.folded else ""
        return (f"{self.channels}, pooling={self.pooling!r}, integration={self.integration!r}, "
                f"unbiased_std={self.unbiased_std}{folded}")

    # --- the reference formulation: eqs. (1)-(9) as separate autograd ops ---

    def style_integrate(self, t: torch.Tensor) -> torch.Tensor:
        """Style features (N, C, d) to gate logits (N, C): eqs. (4)-(7)."""
        if self.cfc is not None:
            z = (t * self.cfc).sum(dim=2)
            if self.bias is not None:
                z = z + self.bias
        else:
            z = self.mlp(t.transpose(1, 2).reshape(t.shape[0], -1))
        return self.bn(z) if self.bn is not None else z

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibration weights G of shape (N, C), eq. (8)."""
        t = style_pool(x, self.pooling, unbiased=self.unbiased_std, eps=self.eps)
        return torch.sigmoid(self.style_integrate(t))

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * G with plain autograd: the formulation of the authors' released code."""
        g = self.gate(x)
        self.report_gate(g)
        return x * g[:, :, None, None].to(x.dtype)

    # --- the fused path ---

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if self.gate_observed:
            return self.reference_forward(x)
        reason = self._reference_reason(x)
        if reason is None:
            return self._fused(x, None)
        ops.log_reference_once(reason)
        return self.reference_forward(x)

    def forward_residual(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """relu(x * G + identity) in one pass over memory (the tail of a residual block).

        When no gradient is recorded and the BN is folded (inference), the result is written
        over x, as the base class's in-place ``out += identity`` does: no new tensor at all.
        """
        self._check_input(x)
        if self.gate_observed:  # through __call__, so forward hooks (pruning) see the gated map
            return super().forward_residual(x, identity)
        reason = self._reference_reason(x)
        if reason is None:
            if identity.shape != x.shape:
                raise InvalidArgumentError(f"SRM.forward_residual: identity shape "
                                           f"{tuple(identity.shape)} != input shape {tuple(x.shape)}")
            return self._fused(x, identity)
        ops.log_reference_once(reason)
        return F.relu(self.reference_forward(x) + identity)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise InvalidArgumentError(f"SRM({self.channels}) expects input of shape "
                                       f"(N, {self.channels}, H, W), got {tuple(x.shape)}")
        if self._uses_batch_stats() and x.shape[0] < 2:
            raise InvalidArgumentError(
                f"SRM in training mode needs a batch of at least 2 samples: its BatchNorm "
                f"normalises over the batch, which one sample cannot do (got input of shape "
                f"{tuple(x.shape)}); use a larger batch, or call .eval() to run single samples")

    def _uses_batch_stats(self) -> bool:
        return self.bn is not None and (self.bn.training or self.bn.running_mean is None)

    def _reference_reason(self, x: torch.Tensor) -> str | None:
        if ops.reference_forced():
            return f"forced ({ops.FORCE_REFERENCE_ENV} or use_reference())"
        if self.pooling not in FUSED_POOLINGS:
            return f"pooling={self.pooling!r} has no fused kernel"
        if self.integration not in FUSED_INTEGRATIONS:
            return f"integration={self.integration!r} has no fused kernel"
        if not x.is_floating_point():
            return f"input dtype {x.dtype} is not floating point"
        return None

    def _cfc_weight(self) -> torch.Tensor:
        """The CFC as C x 2 weights over (mean, std); a one-statistic pooling gets a zero column."""
        if self.pooling == "avg+std":
            return self.cfc
        zeros = torch.zeros_like(self.cfc)
        return torch.cat((self.cfc, zeros) if self.pooling == "avg" else (zeros, self.cfc), dim=1)

    def _folded_cfc(self, weight: torch.Tensor,
                    bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fold the eval-mode BN into the CFC: z' = scale * (w . t + b - mean) + beta."""
        bn = self.bn
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bias is not None:
            shift = shift + bias * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        return weight * scale[:, None], shift

    def _fused(self, x: torch.Tensor, identity: torch.Tensor | None) -> torch.Tensor:
        weight, bias = self._cfc_weight(), self.bias
        bn = self.bn
        batch_stats = self._uses_batch_stats()
        gamma = beta = None
        bn_eps = bn.eps if bn is not None else 0.0
        if batch_stats:
            gamma, beta = bn.weight, bn.bias
        elif bn is not None:
            weight, bias = self._folded_cfc(weight, bias)
        correction = 1 if self.unbiased_std else 0
        if identity is not None and not batch_stats and self._may_overwrite(x):
            ops.srm_residual_inference_(x, identity, weight,
                                        bias if bias is not None else torch.zeros_like(weight[:, 0]),
                                        correction, self.eps)
            return x
        out, mean, std = ops.srm_forward(x, identity, weight, bias, gamma, beta, batch_stats,
                                         bn_eps, correction, self.eps)
        if batch_stats and bn.training and bn.track_running_stats:
            self._update_running_stats(gate_logits(mean, std, weight.to(mean.dtype), None))
        return out

    @staticmethod
    def _may_overwrite(x: torch.Tensor) -> bool:
        """Inference on a dense tensor: nothing will read x again through autograd."""
        return (not torch.is_grad_enabled() and not x.requires_grad
                and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)))

    @torch.no_grad()
    def _update_running_stats(self, z: torch.Tensor) -> None:
        """nn.BatchNorm1d's running-statistics update for the logits z (N, C), written out:
        calling the BN module here costs an OpenMP parallel region per block for a few numbers,
        and so does ``torch.var_mean`` (~260 us for (8, 2048) on 2 threads, against ~12 us for
        the sums below).
        """
        bn = self.bn
        bn.num_batches_tracked.add_(1)
        factor = (1.0 / bn.num_batches_tracked.item()) if bn.momentum is None else bn.momentum
        mean = z.mean(dim=0)
        var = (z - mean).square().sum(dim=0) / (z.shape[0] - 1)
        bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), factor)
        bn.running_var.lerp_(var.to(bn.running_var.dtype), factor)

    @torch.no_grad()
    def fold_bn_(self) -> "SRM":
        """Fold the BN into the CFC (or the MLP's last layer) for inference, in place.

        Afterwards the module has C x d CFC weights and C biases and no BN (integration ``cfc``,
        or ``mlp`` for ``mlp+bn``); its eval outputs equal the unfolded module's.
        """
        if self.bn is None:
            return self
        if self.cfc is not None:
            weight, bias = self._folded_cfc(self.cfc, self.bias)
            self.cfc = nn.Parameter(weight.clone())
            self.bias = nn.Parameter(bias.clone())
            self.integration = "cfc"
        else:
            last = self.mlp[2]
            weight, bias = self._folded_cfc(last.weight, last.bias)
            last.weight.copy_(weight)
            last.bias.copy_(bias)
            self.integration = "mlp"
        self.bn = None
        self.folded = True
        return self
