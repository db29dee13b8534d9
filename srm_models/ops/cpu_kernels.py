"""SRM's compiled CPU kernels (``csrc/srm_cpu.cpp``): built on first use, cached, optional.

Built from torch ops, SRM reads each feature map two or three times per step and pays for
reduction kernels, temporaries and several small ops per cache-sized chunk. The compiled
loops take whole channels (the gate couples a channel's samples and nothing else): a channel's
rows are read from memory once, and the second sweep over them (applying the gate, or the
input gradient) runs while they are still in cache. At inference one row is the unit: its
statistics, gate and relu(x * g + identity) in one read. It is JIT-compiled with ``torch.utils.cpp_extension`` (a C++
compiler and ninja; ~10 s, once per machine, cached under ``TORCH_EXTENSIONS_DIR``) for this
CPU (``-march=native``: the cache key includes the CPU's feature flags).

Where it cannot be built or does not apply (channels_last, half precision), the torch-op
passes run instead and a debug message says so once. ``SRM_CPU_KERNELS=0`` turns it off.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

ENV = "SRM_CPU_KERNELS"
SOURCE = Path(__file__).with_name("csrc") / "srm_cpu.cpp"
CFLAGS = ["-O3", "-march=native", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
DTYPES = (torch.float32, torch.float64)

logger = logging.getLogger(__name__)
_loaded: bool | None = None
_skips_logged: set[str] = set()


def enabled() -> bool:
    """False when SRM_CPU_KERNELS is set to 0 (or empty)."""
    return os.environ.get(ENV, "1") not in ("", "0")


def _cpu_signature() -> str:
    """What -march=native compiles for: the CPU's model and feature flags where Linux says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(wanted)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def extension_name() -> str:
    """A cache name unique to this source, compiler flags, torch version, Python and CPU."""
    key = "\n".join([SOURCE.read_text(), " ".join(CFLAGS + LDFLAGS), torch.__version__,
                     sys.version, _cpu_signature()])
    return "srm_cpu_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def load() -> bool:
    """Build (first time on this machine) and load the kernels; True when they are usable."""
    global _loaded
    if _loaded is None:
        if enabled():
            _loaded = _build_and_load()
        else:
            logger.debug("SRM CPU kernels are off (%s=0): torch-op passes run instead", ENV)
            _loaded = False
    return _loaded


def _build_and_load() -> bool:
    from torch.utils.cpp_extension import load as load_extension
    try:
        name = extension_name()
        logger.info("loading SRM CPU kernels %s (compiled once per machine, ~10 s)", name)
        load_extension(name, sources=[str(SOURCE)], extra_cflags=CFLAGS, extra_ldflags=LDFLAGS,
                       is_python_module=False, verbose=False)
    except Exception as err:  # no source, compiler or ninja; an unsupported platform
        lines = str(err).strip().splitlines() or [""]
        reason = next((ln for ln in lines if "error" in ln.lower()), lines[-1])
        logger.debug("SRM CPU kernels could not be built (%s: %s); torch-op passes run instead",
                     type(err).__name__, reason.strip())
        return False
    return True


def applies(x: Tensor, *others: Tensor) -> bool:
    """True when x (and ``others``, same layout) can take the compiled kernels."""
    if x.device.type != "cpu":
        return False
    reason = None
    if x.dtype not in DTYPES:
        reason = f"dtype {x.dtype} (the kernels take float32 and float64)"
    elif not all(t.is_contiguous() for t in (x, *others)):
        reason = "a non-contiguous map, e.g. channels_last (the kernels read contiguous rows)"
    if reason is not None:
        if reason not in _skips_logged:
            _skips_logged.add(reason)
            logger.debug("SRM CPU kernels skipped for %s; torch-op passes run instead", reason)
        return False
    return load()


def srm_forward(x: Tensor, identity: Optional[Tensor], weight: Tensor, bias: Optional[Tensor],
                bn_weight: Optional[Tensor], bn_bias: Optional[Tensor], batch_stats: bool,
                bn_eps: float, correction: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """``fused.srm_forward`` for maps where ``applies`` holds: each map read once."""
    params = (_like(t, x) for t in (weight, bias, bn_weight, bn_bias))
    return torch.ops.srm_cpu.srm_forward(x, identity, *params, batch_stats, bn_eps, correction, eps)


def srm_backward(grad_out: Tensor, x: Tensor, out: Optional[Tensor], weight: Tensor,
                 bias: Optional[Tensor], bn_weight: Optional[Tensor], bn_bias: Optional[Tensor],
                 mean: Tensor, std: Tensor, batch_stats: bool, bn_eps: float, correction: int,
                 eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``fused.srm_backward`` for maps where ``applies`` holds: each map read once.

    Parameter gradients come back in each parameter's dtype; absent ones are empty tensors.
    """
    params = (weight, bias, bn_weight, bn_bias)
    dx, d_identity, *grads = torch.ops.srm_cpu.srm_backward(
        grad_out, x, out, *(_like(t, x) for t in params), _like(mean, x), _like(std, x),
        batch_stats, bn_eps, correction, eps)
    grads = [weight.new_empty((0,)) if p is None or g.numel() == 0 else g.to(p.dtype)
             for g, p in zip(grads, params)]
    return (dx, d_identity, *grads)


def residual_inference_(x: Tensor, identity: Tensor, weight: Tensor, bias: Tensor,
                        correction: int, eps: float) -> None:
    """relu(x * sigmoid(w0 * mean + w1 * std + b) + identity) written over x, one read of x."""
    torch.ops.srm_cpu.residual_inference_(x, identity, _like(weight, x), _like(bias, x),
                                          correction, eps)


def _like(t: Optional[Tensor], x: Tensor) -> Optional[Tensor]:
    """A small per-channel tensor as the kernels read it: contiguous, in x's dtype."""
    return None if t is None else t.to(x.dtype).contiguous()
