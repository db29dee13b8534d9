"""GPU check for Fast SRM (issue 3's GPU targets), one short script needing only torch (+ Triton
as shipped with CUDA torch wheels) and this repository.

    python benchmarks/gpu_check_srm.py [--json gpu.json]

Targets: SRM-ResNet-50 / ResNet-50 train step <= 1.03 under bf16 autocast and channels_last,
and the fused SRM layer's forward within 1.5x of a plain copy of its input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_srm  # noqa: E402
from srm_models.ops import triton_kernels  # noqa: E402
from srm_models.layers.srm import SRM  # noqa: E402


def layer_vs_copy(device: torch.device, rounds: int) -> bench_srm.Comparison:
    """Fused SRM forward (bf16, channels_last, training mode) against x.clone()."""
    x = torch.randn(32, 256, 56, 56, device=device, dtype=torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    layer = SRM(256).to(device)
    candidates = {"copy of x": lambda: x.clone(), "fused SRM fwd": lambda: layer(x),
                  "reference SRM fwd": bench_srm._reference(lambda: layer(x))}
    return bench_srm.compare("gpu layer", "32x256x56x56 bf16 cl", candidates, device, rounds, 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()} torch {torch.__version__} "
          f"triton kernels: {triton_kernels.importable()}")
    bench_srm.print_table([])
    results = [layer_vs_copy(device, args.rounds)]
    results += bench_srm.train_suite(["resnet50"], ["baseline", "se", "srm"], device, args.rounds,
                                     0.5, use_compile=False, batch=None)
    results += bench_srm.layer_suite(bench_srm.RESNET50_STAGES, device, args.rounds, 0.5, False)
    train = results[1].ratios
    copy = results[0].times_ms
    verdict = {
        "train_ratio_srm": train["srm"], "train_ratio_se": train["se"],
        "train_target_met": train["srm"] <= 1.03,
        "layer_over_copy": copy["fused SRM fwd"] / copy["copy of x"],
        "layer_target_met": copy["fused SRM fwd"] / copy["copy of x"] <= 1.5,
    }
    print(json.dumps(verdict, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"verdict": verdict, "results": [r.__dict__ for r in results]},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
