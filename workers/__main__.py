"""Run one trial from a terminal, without Ray or MLflow (for timing on a bare GPU machine).

    python -m workers --dataset textures --backbone cifar_resnet20 --variant srm \\
        --fold 0 --n-folds 5 --protocol quick --set epochs=2 --set lr=0.1

Prints the result as JSON (history left out unless --history); a progress bar shows on a terminal.
"""
from __future__ import annotations

import argparse
import json
import sys

from .data import DatasetError
from .overrides import parse_override
from .plugins import PluginError, load_plugins
from .protocols import ProtocolError
from .spec import TrialSpec


def _override(text: str) -> tuple[str, object]:
    try:
        return parse_override(text, "--set")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run one SRM Bench trial.")
    parser.add_argument("--dataset", default="textures")
    parser.add_argument("--backbone", default="cifar_resnet20")
    parser.add_argument("--variant", default="srm", help="baseline or a recalibration kind (srm, se, ge, cbam, "
                                                         "eca, gct, simam, or a plugin's)")
    parser.add_argument("--fold", type=int)
    parser.add_argument("--n-folds", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="quick")
    parser.add_argument("--set", dest="overrides", action="append", type=_override, default=[],
                        metavar="FIELD=VALUE", help="override a protocol field (repeatable)")
    parser.add_argument("--data-dir")
    parser.add_argument("--checkpoint-dir", help="resume from / write checkpoints here")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--history", action="store_true", help="include per-epoch metrics")
    args = parser.parse_args(argv)
    try:
        load_plugins()
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from .trial import run_trial

    try:
        spec = TrialSpec(dataset=args.dataset, backbone=args.backbone, variant={"kind": args.variant},
                         fold=args.fold, n_folds=args.n_folds, seed=args.seed, protocol=args.protocol,
                         overrides=dict(args.overrides))
        result = run_trial(spec, data_dir=args.data_dir, checkpoint_dir=args.checkpoint_dir, device=args.device)
    except (DatasetError, ProtocolError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.history:
        result.pop("history")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
