"""``python -m srm_models``: build every registered model and print the paper's complexity tables.

Models are built on ``torch.device("meta")``, so this allocates nothing and takes seconds.
Exits with status 1 if a count no longer matches Table 1 or Table 2 of the SRM paper.
"""
from __future__ import annotations

import argparse
import sys

import torch

from .complexity import Complexity, complexity
from .registry import create_model, list_models

# (model, paper params in M, paper GFLOPs) from Table 1 of the SRM paper.
TABLE_1 = [
    ("resnet50", 25.56, 3.86), ("se_resnet50", 28.09, 3.87), ("ge_resnet50", 31.12, 3.87),
    ("srm_resnet50", 25.62, 3.88), ("cbam_resnet50", None, None),
    ("resnet101", 44.55, 7.58), ("se_resnet101", 49.33, 7.60), ("ge_resnet101", 53.58, 7.60),
    ("srm_resnet101", 44.68, 7.62), ("cbam_resnet101", None, None),
]
# (model, paper params in M for CIFAR-10, for CIFAR-100) from Table 2.
TABLE_2 = [
    ("cifar_resnet56", 0.87, 0.89), ("se_cifar_resnet56", 0.97, 0.99),
    ("ge_cifar_resnet56", 1.91, 1.94), ("srm_cifar_resnet56", 0.89, 0.91),
    ("cbam_cifar_resnet56", None, None),
]


def count(name: str, input_size: int, **kwargs) -> Complexity:
    with torch.device("meta"):
        model = create_model(name, input_size=input_size, **kwargs)
    return complexity(model, input_size)


def render(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def mark(ours: float, paper: float | None, mismatches: list[str], what: str) -> str:
    if paper is None:
        return "-"
    if round(ours, 2) != paper:
        mismatches.append(what)
        return f"{paper:.2f} (differs)"
    return f"{paper:.2f} ok"


def table_1(mismatches: list[str]) -> str:
    rows = []
    for name, paper_params, paper_gflops in TABLE_1:
        original = count(name, 224, stride_in_1x1=True)
        torchvision = count(name, 224)
        # The paper's GFLOPs of the modules include operations outside Conv2d/Linear (see
        # docs/models.md), so only the plain networks' MACs are checked.
        check_macs = paper_gflops if name.startswith("resnet") else None
        rows.append([name, f"{original.params_m:.2f}", mark(original.params_m, paper_params, mismatches,
                                                             f"{name} params"),
                     f"{original.gmacs:.2f}", mark(original.gmacs, check_macs, mismatches, f"{name} GMACs")
                     if check_macs else (f"{paper_gflops:.2f}" if paper_gflops else "-"),
                     f"{torchvision.gmacs:.2f}"])
    return render(["model", "params (M)", "paper", "GMACs (stride 1x1)", "paper GFLOPs",
                   "GMACs (stride 3x3)"], rows)


def table_2(mismatches: list[str]) -> str:
    rows = []
    for name, paper_10, paper_100 in TABLE_2:
        c10, c100 = count(name, 32), count(name, 32, num_classes=100)
        basic = count(name, 32, block="basic")
        rows.append([name, f"{c10.params_m:.2f}", mark(c10.params_m, paper_10, mismatches, f"{name} C10"),
                     f"{c100.params_m:.2f}", mark(c100.params_m, paper_100, mismatches, f"{name} C100"),
                     f"{c10.gmacs * 1000:.1f}", f"{basic.params_m:.3f}"])
    return render(["model", "CIFAR-10 params (M)", "paper", "CIFAR-100 params (M)", "paper",
                   "MMACs", "block=basic params (M)"], rows)


def zoo() -> str:
    rows = []
    for name in list_models():
        size = 32 if "cifar" in name else 224
        counted = count(name, size)
        rows.append([name, str(size), f"{counted.params_m:.3f}", f"{counted.gmacs:.3f}"])
    return render(["model", "input", "params (M)", "GMACs (defaults)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srm_models", description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="also list every registered model's counts")
    args = parser.parse_args(argv)
    built = 0
    for name in list_models():
        with torch.device("meta"):
            create_model(name)
        built += 1
    print(f"built all {built} registered models\n")
    mismatches: list[str] = []
    print("Table 1: ImageNet, 224x224 (params = trainable; MACs = conv + linear + shortcut additions)")
    print(table_1(mismatches), "\n")
    print("Table 2: CIFAR ResNet-56, 32x32 (the paper's bottleneck layout, 9 blocks per stage)")
    print(table_2(mismatches))
    if args.all:
        print("\nEvery registered model, default keywords\n" + zoo())
    if mismatches:
        print(f"\nDIFFERS FROM THE PAPER: {', '.join(mismatches)}")
        return 1
    print("\nevery checked count matches the paper")
    return 0


if __name__ == "__main__":
    sys.exit(main())
