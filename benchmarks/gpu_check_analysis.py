"""GPU check for the analyses (issue 12): the ratio-0 identity on CUDA, where SRM trains and
evaluates through its fused Triton kernels under bf16 autocast and channels_last, and the
analysis observes gates through the plain path. Needs only torch and this repository.

    python benchmarks/gpu_check_analysis.py [--json out.json]

For SE, GE and SRM on generated textures (CIFAR ResNet-20, quick protocol, 5 folds of which
two are trained): the held-out top-1 at prune ratio 0 must equal the trial's own top-1 within
0.01 points on the same device; the script also prints each stage's curve.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="srm-gpu-analysis-"))
    os.environ["SRM_BENCH_HOME"] = str(home)
    from workers.analysis import run_trial_analysis
    from workers.spec import TrialSpec
    from workers.trial import run_trial
    from workers.weights import keep_locally

    rows = []
    for kind in ("se", "ge", "srm"):
        for fold in (0, 1):
            spec = TrialSpec(dataset="textures", backbone="cifar_resnet20", variant={"kind": kind}, fold=fold,
                             n_folds=5, seed=0, protocol="quick", overrides={"epochs": args.epochs})
            started = time.perf_counter()
            result = run_trial(spec, data_dir=home / "data", checkpoint_dir=home / f"{kind}-{fold}", device="cuda")
            uri = keep_locally(result["checkpoint_path"], result["content_hash"])
            pruning = run_trial_analysis("pruning", spec.to_dict(), uri, {"ratios": [0.0, 0.3, 0.6, 1.0]},
                                         data_dir=home / "data", device="cuda")
            weights = run_trial_analysis("channel_weights", spec.to_dict(), uri, {}, data_dir=home / "data",
                                         device="cuda")
            ratio0 = {stage: curves["gate"][0] for stage, curves in pruning["stages"].items()}
            row = {"kind": kind, "fold": fold, "device": result["device"], "trial_top1": result["top1"],
                   "analysis_top1": pruning["top1"], "ratio0_top1": ratio0,
                   "identity_ok": all(abs(v - result["top1"]) < 0.01 for v in ratio0.values()),
                   "curves": pruning["stages"], "sum_sq_total": weights["total"],
                   "distinct_top_images": weights["distinct_top_images"], "block": weights["block"],
                   "seconds": time.perf_counter() - started}
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
    print("ratio-0 identity holds on", torch.cuda.get_device_name(), ":", all(r["identity_ok"] for r in rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
