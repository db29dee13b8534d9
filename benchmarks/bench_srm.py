"""Fast SRM benchmark: the fused layer against the authors' form, and its cost in a whole network.

The reference is SRM as the authors released it (``AuthorsSRM``: view, mean, std, cat, CFC as a
broadcast product and sum, BatchNorm, sigmoid, multiply), not this repository's own unfused path.

Everything is measured side by side in one run with ``torch.utils.benchmark``. The candidates of
a comparison are timed in interleaved rounds (A, B, A, B, ...) and every ratio is the median of
the per-round ratios, so that load from other processes hits both sides alike. Beside wall time
it reports process CPU time (all threads), which shared machines disturb much less, and the
load average (as `uptime` shows it) before and after each comparison.

    python benchmarks/bench_srm.py --quick                      # a few minutes on 2 CPU cores
    python benchmarks/bench_srm.py --suites layer --json out.json
    python benchmarks/bench_srm.py --suites train,infer --families resnet50 --compile

On CUDA the model suites run under bf16 autocast with channels_last inputs and weights.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srm_models import create_model, fuse_for_inference  # noqa: E402
from srm_models.layers.srm import SRM  # noqa: E402

RESNET50_STAGES = [(32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7)]
CIFAR56_STAGES = [(128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8)]
FAMILIES = {  # name -> (batch on CPU, batch on GPU, input size, classes)
    "resnet50": (8, 64, 224, 1000),
    "cifar_resnet56": (128, 128, 32, 10),
}
VARIANTS = ("baseline", "se", "ge", "srm")


@dataclass
class Comparison:
    """One row group: candidates timed side by side, ratios against the first."""

    suite: str
    case: str
    times_ms: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)     # process CPU time, all threads
    cpu_ratios: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    load_before: list[float] = field(default_factory=list)  # os.getloadavg(): 1, 5, 15 min
    load_after: list[float] = field(default_factory=list)


def _load_average() -> list[float]:
    """The machine's 1/5/15-minute load averages (what `uptime` shows); empty where unknown."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(suite: str, case: str, candidates: dict[str, Callable[[], object]], device: torch.device,
            rounds: int, min_time: float, items: int = 0) -> Comparison:
    """Time each candidate in ``rounds`` interleaved rounds; ratios are to the first candidate."""
    load_before = _load_average()
    timers = {}
    for name, fn in candidates.items():
        fn()  # warm-up (and compilation for torch.compile candidates)
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        once = time.perf_counter() - start
        number = max(1, int(min_time / max(once, 1e-6)))
        stmt = "fn(); sync()"
        # torch's Timer runs on 1 thread unless told otherwise: time what a user's process gets
        timers[name] = (benchmark.Timer(stmt, globals={"fn": fn, "sync": lambda: _sync(device)},
                                        label=suite, sub_label=case, description=name,
                                        num_threads=torch.get_num_threads()), number)
    per_round: dict[str, list[float]] = {name: [] for name in candidates}
    cpu_round: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, (timer, number) in timers.items():
            cpu_start = time.process_time()
            per_round[name].append(timer.timeit(number).median)
            cpu_round[name].append((time.process_time() - cpu_start) / number)
    first = next(iter(candidates))
    result = Comparison(suite, case, load_before=load_before, load_after=_load_average())
    for name, times in per_round.items():
        result.times_ms[name] = statistics.median(times) * 1e3
        result.ratios[name] = statistics.median(t / b for t, b in zip(times, per_round[first]))
        result.cpu_ms[name] = statistics.median(cpu_round[name]) * 1e3
        result.cpu_ratios[name] = statistics.median(
            t / b for t, b in zip(cpu_round[name], cpu_round[first]))
        if items:
            result.throughput[name] = items / statistics.median(times)
    print_table([result], header=False)
    return result


class AuthorsSRM(torch.nn.Module):
    """SRM as the authors' released code writes it: the reference the fused layer must beat.

    Their ``SRMLayer`` (hyunjaelee410/style-based-recalibration-module): a view to (N, C, HW),
    mean and unbiased std over it, concatenated to (N, C, 2), the channel-wise FC as
    ``(t * cfc).sum(-1)``, batch norm, sigmoid, and x times the gate. (Their BN is a
    BatchNorm2d on (N, C, 1, 1); BatchNorm1d on (N, C) computes the same.) No eps inside the
    std, as there; the fused layer's sqrt(var + 1e-5) differs by ~1e-5 relative on these inputs.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.cfc = torch.nn.Parameter(torch.zeros(channels, 2))
        self.bn = torch.nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        rows = x.view(n, c, -1)
        t = torch.cat((rows.mean(-1, keepdim=True), rows.std(-1, keepdim=True)), dim=-1)
        g = torch.sigmoid(self.bn((t * self.cfc).sum(-1)))
        return x * g[:, :, None, None]


def _train_step(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    """Forward and backward as in a training step: gradients set to None first, so that
    backward writes x's gradient instead of adding to the previous call's."""
    x.grad = None
    module.zero_grad(set_to_none=True)
    module(x).backward(grad)


def layer_suite(shapes, device, rounds, min_time, use_compile) -> list[Comparison]:
    """SRM layer alone, fused vs the authors' form: training forward, and forward + backward."""
    results = []
    for shape in shapes:
        results += _layer_case(shape, device, rounds, min_time, use_compile)
    return results


def _layer_case(shape, device, rounds, min_time, use_compile) -> list[Comparison]:
    torch.manual_seed(0)
    layer = SRM(shape[1]).to(device)
    authors = AuthorsSRM(shape[1]).to(device)
    x = torch.randn(shape, device=device, requires_grad=True)
    grad = torch.randn(shape, device=device)
    target = torch.empty_like(grad)
    fwd = {"authors' form": lambda: authors(x), "fused": lambda: layer(x),
           "copy of x": lambda: x.detach().clone(),
           "copy into old buffer": lambda: target.copy_(x.detach())}
    fb = {"authors' form": lambda: _train_step(authors, x, grad),
          "fused": lambda: _train_step(layer, x, grad)}
    if use_compile:
        compiled = torch.compile(layer)
        fwd["fused+compile"] = lambda: compiled(x)
        fb["fused+compile"] = lambda: _train_step(compiled, x, grad)
    case = "x".join(map(str, shape))
    return [compare("layer fwd", case, fwd, device, rounds, min_time),
            compare("layer fwd+bwd", case, fb, device, rounds, min_time)]


def _model_name(variant: str, family: str) -> str:
    return family if variant == "baseline" else f"{variant}_{family}"


def _inputs(family: str, device: torch.device, batch: int | None = None):
    cpu_batch, gpu_batch, size, classes = FAMILIES[family]
    batch = batch or (gpu_batch if device.type == "cuda" else cpu_batch)
    x = torch.randn(batch, 3, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, classes, (batch,), device=device), classes


def _build(name: str, classes: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, num_classes=classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_suite(families, variants, device, rounds, min_time, use_compile, batch) -> list[Comparison]:
    """One SGD step (forward, loss, backward, update) per model, baseline first."""
    results = []
    for family in families:
        x, y, classes = _inputs(family, device, batch)
        candidates = {}
        for variant in variants:
            model = _build(_model_name(variant, family), classes, device).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            for tag, module in [("", model)] + ([("+compile", torch.compile(model))] if use_compile else []):
                def step(module=module, optimizer=optimizer):
                    optimizer.zero_grad(set_to_none=True)
                    with _autocast(device):
                        loss = torch.nn.functional.cross_entropy(module(x), y)
                    loss.backward()
                    optimizer.step()
                candidates[variant + tag] = step
        results.append(compare("train step", f"{family} batch {x.shape[0]}", candidates, device,
                               rounds, min_time, items=x.shape[0]))
    return results


def infer_suite(families, variants, device, rounds, min_time, use_compile, batch) -> list[Comparison]:
    """Eval-mode forward throughput; SRM models with their BN folded (fuse_for_inference)."""
    results = []
    for family in families:
        x, _, classes = _inputs(family, device, batch)
        candidates = {}
        for variant in variants:
            model = fuse_for_inference(_build(_model_name(variant, family), classes, device))
            for tag, module in [("", model)] + ([("+compile", torch.compile(model))] if use_compile else []):
                def forward(module=module):
                    with torch.inference_mode(), _autocast(device):
                        return module(x)
                candidates[variant + tag] = forward
        results.append(compare("inference", f"{family} batch {x.shape[0]}", candidates, device,
                               rounds, min_time, items=x.shape[0]))
    return results


def print_table(results: list[Comparison], header: bool = True) -> None:
    """Rows of median time, ratio to the group's first candidate, and images/s where known."""
    if header:
        print(f"{'suite':<14} {'case':<26} {'candidate':<20} {'median ms':>10} {'ratio':>7} "
              f"{'img/s':>8} {'cpu ms':>10} {'cpu ratio':>9}  load avg before -> after")
    for r in results:
        load = f"{_loads(r.load_before)} -> {_loads(r.load_after)}"
        for name, ms in r.times_ms.items():
            rate = f"{r.throughput[name]:8.1f}" if name in r.throughput else ""
            print(f"{r.suite:<14} {r.case:<26} {name:<20} {ms:10.2f} {r.ratios[name]:7.3f} {rate:>8} "
                  f"{r.cpu_ms[name]:10.2f} {r.cpu_ratios[name]:9.3f}  {load}", flush=True)
            load = ""


def _loads(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values) or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suites", default="layer,train,infer",
                        help="comma list of: layer, train, infer")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"comma list of: {', '.join(FAMILIES)}")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma list of: {', '.join(VARIANTS)} (baseline is always first)")
    parser.add_argument("--shapes", default="resnet50,cifar56",
                        help="layer shapes: resnet50 (4 stages, batch 32), cifar56 (3 stages, "
                             "batch 128), or N,C,H,W[;N,C,H,W...]")
    parser.add_argument("--batch", type=int, default=None, help="override the model batch size")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timing block")
    parser.add_argument("--quick", action="store_true",
                        help="stage-1 shapes only, 3 rounds, short blocks")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    suites = _split(args.suites, ("layer", "train", "infer"), "--suites")
    families = _split(args.families, tuple(FAMILIES), "--families")
    variants = ["baseline"] + [v for v in _split(args.variants, VARIANTS, "--variants")
                               if v != "baseline"]
    shapes = _shapes(args.shapes, quick=args.quick)
    rounds, min_time = (3, 0.2) if args.quick else (args.rounds, args.min_time)

    results: list[Comparison] = []
    print_table([])
    if "layer" in suites:
        results += layer_suite(shapes, device, rounds, min_time, args.compile)
    if "train" in suites:
        results += train_suite(families, variants, device, rounds, min_time, args.compile, args.batch)
    if "infer" in suites:
        results += infer_suite(families, variants, device, rounds, min_time, args.compile, args.batch)

    print("\nsummary")
    print_table(results)
    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(),
              "amp": "bf16+channels_last" if device.type == "cuda" else "float32",
              "rounds": rounds, "command": " ".join(sys.argv),
              "results": [asdict(r) for r in results]}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


def _split(value: str, valid: tuple[str, ...], flag: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in valid]
    if bad or not items:
        raise SystemExit(f"{flag}: {', '.join(bad) or 'nothing given'} is not valid; "
                         f"choose from {', '.join(valid)}")
    return items


def _shapes(value: str, quick: bool) -> list[tuple[int, ...]]:
    presets = {"resnet50": RESNET50_STAGES, "cifar56": CIFAR56_STAGES}
    shapes = []
    for item in value.split(";"):
        parts = [p.strip() for p in item.split(",")]
        if all(p in presets for p in parts):
            for p in parts:
                shapes += presets[p][:1] if quick else presets[p]
            continue
        try:
            shape = tuple(int(p) for p in parts)
        except ValueError:
            shape = ()
        if len(shape) != 4 or min(shape) < 1:
            raise SystemExit(f"--shapes: {item!r} is not valid; give resnet50, cifar56 or "
                             "N,C,H,W with positive ints, several separated by ';'")
        shapes.append(shape)
    return shapes


if __name__ == "__main__":
    raise SystemExit(main())
