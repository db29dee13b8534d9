"""GPU check for Fast SRM: one short script for a machine with a CUDA device (torch, the Triton
shipped with CUDA wheels, and this repository).

    python benchmarks/gpu_check_srm.py [--json gpu.json] [--rounds 5]

1. Kernel accuracy: the fused op's output and gradients (x, identity, CFC, BN) against the
   same layer in float64 through the reference path, for float32 and bfloat16 inputs,
   channels_last and contiguous, plain and residual, training and inference.
2. The fused layer against the authors' form (``bench_srm.AuthorsSRM``): the same numbers in
   float32, and the time of a forward and a forward + backward.
3. The SRM-ResNet-50 / ResNet-50 train step under bf16 autocast and channels_last (goal
   <= 1.03), and the fused forward within 1.5x of a copy of its input.

Exit status: 0 when every accuracy check passes (timings are reported, not enforced), 1 when
one fails, 2 without a CUDA device.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_srm  # noqa: E402

from srm_models import ops  # noqa: E402
from srm_models.layers.srm import SRM  # noqa: E402
from srm_models.ops import triton_kernels  # noqa: E402

SHAPE = (8, 64, 28, 28)
# Norm-relative error allowed against float64, or twice the error of the unfused reference
# path run in the same dtype, whichever is larger (some gradients cancel to near zero).
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}
MAPS = ("out", "dx", "d_identity")  # in the input's dtype and layout; parameter grads in float32


def _randomised(layer: SRM, seed: int = 0) -> SRM:
    """Non-trivial parameters and running statistics (a fresh SRM's CFC is zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
        layer.bn.running_mean.copy_(torch.randn(layer.channels, generator=gen))
        layer.bn.running_var.copy_(torch.rand(layer.channels, generator=gen) + 0.5)
    return layer


def _run(layer: torch.nn.Module, x, grad, identity, reference: bool, backward: bool):
    """[output, dx, d_identity, parameter grads...] of one call (only the output without
    ``backward``, under no_grad: inference, where the residual form writes over its input)."""
    with ops.use_reference(reference):
        if not backward:
            with torch.no_grad():
                x = x.clone()
                return [layer(x) if identity is None else layer.forward_residual(x, identity)]
        x = x.detach().clone().requires_grad_()
        ident = None if identity is None else identity.detach().clone().requires_grad_()
        layer.zero_grad(set_to_none=True)
        out = layer(x) if ident is None else layer.forward_residual(x, ident)
        out.backward(grad)
    results = [out.detach(), x.grad] + ([ident.grad] if ident is not None else [])
    return results + [p.grad for p in layer.parameters()]


def _rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def kernel_accuracy(device: torch.device) -> list[dict]:
    """Fused op vs float64 truth, per dtype, layout, form and mode; one row per tensor."""
    rows = []
    for dtype, layout, residual, mode in itertools.product(
            (torch.float32, torch.bfloat16), (torch.channels_last, torch.contiguous_format),
            (False, True), ("train", "eval")):
        for backward in ((True, False) if mode == "eval" else (True,)):
            rows += _accuracy_case(device, dtype, layout, residual, mode, backward)
    return rows


def _accuracy_case(device, dtype, layout, residual, mode, backward) -> list[dict]:
    torch.manual_seed(0)
    layer = _randomised(SRM(SHAPE[1])).to(device).train(mode == "train")
    truth_layer = copy.deepcopy(layer).double()

    def draw(scale=1.0, shift=0.0):
        t = torch.randn(SHAPE, device=device) * scale + shift
        return t.to(dtype).contiguous(memory_format=layout)

    x, grad = draw(1.5, 0.3), draw()
    identity = draw() if residual else None
    fused = _run(layer, x, grad, identity, False, backward)
    same_dtype = _run(layer, x, grad, identity, True, backward)
    truth = _run(truth_layer, x.double(), grad.double(),
                 None if identity is None else identity.double(), True, backward)
    names = [n for n in (*MAPS, "d_cfc", "d_bn_weight", "d_bn_bias")
             if residual or n != "d_identity"][:len(fused)]
    layout_name = "channels_last" if layout == torch.channels_last else "contiguous"
    rows = []
    for name, got, ref, want in zip(names, fused, same_dtype, truth, strict=True):
        error, ref_error = _rel_error(got, want), _rel_error(ref, want)
        rows.append({
            "dtype": str(dtype).replace("torch.", ""), "layout": layout_name,
            "form": "residual" if residual else "plain",
            "mode": mode if backward else "inference (no grad)",
            "tensor": name, "fused_error": error, "reference_error": ref_error,
            "dtype_ok": got.dtype == (dtype if name in MAPS else torch.float32),
            "layout_kept": name not in MAPS or got.is_contiguous(memory_format=layout),
            "ok": error <= max(TOLERANCE[dtype], 2 * ref_error),
        })
    return rows


def against_authors(device: torch.device) -> list[dict]:
    """The fused layer and the authors' form with the same parameters, in float32."""
    torch.manual_seed(0)
    layer = _randomised(SRM(SHAPE[1])).to(device)
    authors = bench_srm.AuthorsSRM(SHAPE[1]).to(device)
    with torch.no_grad():
        authors.cfc.copy_(layer.cfc)
    authors.bn.load_state_dict(layer.bn.state_dict())
    x, grad = torch.randn(SHAPE, device=device), torch.randn(SHAPE, device=device)
    fused = _run(layer, x, grad, None, False, True)
    theirs = _run(authors, x, grad, None, True, True)
    names = ["out", "dx", "d_cfc", "d_bn_weight", "d_bn_bias"]
    # their std has no eps inside the square root: ~1e-5 relative on unit-variance rows
    return [{"tensor": name, "difference": _rel_error(a, b), "ok": _rel_error(a, b) <= 1e-4}
            for name, a, b in zip(names, fused, theirs, strict=True)]


def layer_vs_copy(device: torch.device, rounds: int) -> bench_srm.Comparison:
    """Fused SRM forward (bf16, channels_last, training mode) against x.clone()."""
    x = torch.randn(32, 256, 56, 56, device=device, dtype=torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    layer, authors = SRM(256).to(device), bench_srm.AuthorsSRM(256).to(device)
    candidates = {"copy of x": lambda: x.clone(), "fused SRM fwd": lambda: layer(x),
                  "authors' SRM fwd": lambda: authors(x)}
    return bench_srm.compare("gpu layer", "32x256x56x56 bf16 cl", candidates, device, rounds, 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda",
                        help="cuda, or cpu to try parts 1 and 2 of this script without a GPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (dry run: no timings)"
    print(f"{name} torch {torch.__version__} triton kernels: {triton_kernels.importable()}")

    accuracy = kernel_accuracy(device)
    print(f"\n{'dtype':<9} {'layout':<14} {'form':<9} {'mode':<20} {'tensor':<12} "
          f"{'fused err':>10} {'ref err':>10}  ok")
    for r in accuracy:
        ok = r["ok"] and r["dtype_ok"] and r["layout_kept"]
        print(f"{r['dtype']:<9} {r['layout']:<14} {r['form']:<9} {r['mode']:<20} {r['tensor']:<12} "
              f"{r['fused_error']:10.2e} {r['reference_error']:10.2e}  {'yes' if ok else 'NO'}")
    authors = against_authors(device)
    print("\nfused layer vs the authors' form, float32 (norm-relative difference)")
    for r in authors:
        print(f"  {r['tensor']:<12} {r['difference']:.2e}  {'yes' if r['ok'] else 'NO'}")
    accurate = all(r["ok"] and r["dtype_ok"] and r["layout_kept"] for r in accuracy)
    matches = all(r["ok"] for r in authors)
    if device.type != "cuda":
        return 0 if accurate and matches else 1

    print()
    bench_srm.print_table([])
    results = [layer_vs_copy(device, args.rounds)]
    results += bench_srm.train_suite(["resnet50"], ["baseline", "se", "srm"], device, args.rounds,
                                     0.5, use_compile=False, batch=None)
    results += bench_srm.layer_suite(bench_srm.RESNET50_STAGES, device, args.rounds, 0.5, False)
    train = results[1].ratios
    copy_ms = results[0].times_ms
    verdict = {
        "kernels_accurate": accurate,
        "matches_authors_form": matches,
        "train_ratio_srm": train["srm"], "train_ratio_se": train["se"],
        "train_target_met": train["srm"] <= 1.03,
        "layer_over_copy": copy_ms["fused SRM fwd"] / copy_ms["copy of x"],
        "layer_target_met": copy_ms["fused SRM fwd"] / copy_ms["copy of x"] <= 1.5,
        "fwd_bwd_speedup_vs_authors": {r.case: 1 / r.ratios["fused"] for r in results[2:]
                                       if r.suite == "layer fwd+bwd"},
    }
    print(json.dumps(verdict, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"verdict": verdict, "accuracy": accuracy,
                                         "authors": authors,
                                         "results": [r.__dict__ for r in results]}, indent=2))
    return 0 if accurate and matches else 1


if __name__ == "__main__":
    raise SystemExit(main())
