"""The paper's Sec. 5 analyses on one trained trial: its final weights on its own held-out fold.

``pruning`` (Fig. 6): held-out top-1 while a stage's residual channels are zeroed by lowest gate,
and the same with a seeded random order as the control. ``channel_weights`` (Figs. 7, 8, 10): every
block's per-image channel weights, their correlations and the images that weigh each channel most.
Needs only torch (run it as a Ray task or alone).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from srm_models.gates import gated_blocks, gated_stages, prune_stage, record_gates

from . import paths
from .data import load_dataset
from .folds import make_split
from .protocols import get_protocol
from .spec import TrialSpec
from .trial import _batches_for, build_model, describe_device, evaluate, pick_device
from .weights import load_state_dict

DEFAULT_RATIOS = tuple(round(0.1 * i, 1) for i in range(11))
TOP_CHANNELS = 64  # Fig. 7 shows the first 64 channels of a block


class TrialData:
    """A trial's trained model, its held-out fold and how to evaluate on it (as the trial did)."""

    def __init__(self, spec: dict, weights_uri: str | None, data_dir=None, device=None,
                 tracking_uri: str | None = None):
        self.spec = TrialSpec.from_dict(spec)
        self.protocol = get_protocol(self.spec.protocol, self.spec.overrides)
        self.device = pick_device(device)
        state = load_state_dict(weights_uri, tracking_uri)
        self.data = load_dataset(self.spec.dataset, Path(data_dir) if data_dir else paths.data_dir(),
                                 size=self.protocol.stored_size(), in_memory=self.protocol.in_memory,
                                 num_workers=self.protocol.num_workers)
        self.split = make_split(self.data.index, self.spec.n_folds, self.spec.fold, self.protocol.fold_seed)
        self.model = build_model(self.spec, self.data.num_classes, self.protocol.image_size)
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()
        self.batches = _batches_for(self.data, self.protocol, self.device)
        # The trial's own evaluation batch size, so batch-shaped arithmetic matches its top-1.
        self.batch_size = min(self.protocol.batch_size, len(self.split.train)) * 2

    def top1(self) -> float:
        use_amp = self.protocol.amp and self.device.type == "cuda"

        def autocast():
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_amp)

        return evaluate(self.model, self.batches, self.split.held_out, self.batch_size,
                        self.data.num_classes, autocast)["top1"]

    def thumbnails(self, positions: list[int]) -> np.ndarray:
        """The held-out images at ``positions`` as the network saw them: uint8 (n, H, W, 3)."""
        mean = torch.tensor(self.data.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.data.std, device=self.device).view(1, 3, 1, 1)
        chosen = self.split.held_out[np.asarray(positions, dtype=np.int64)]
        images = [batch for batch, _, _ in self.batches.eval(chosen, self.batch_size)]
        pixels = (torch.cat(images).float() * std + mean).clamp(0, 1).mul(255).round().byte()
        return pixels.permute(0, 2, 3, 1).cpu().numpy()

    def describe(self) -> dict:
        return {"device": describe_device(self.device), "num_eval": int(len(self.split.held_out)),
                "split_hash": self.split.hash}


def random_seed(seed: int, stage: int, ratio: float) -> int:
    """One seeded random order per (stage, ratio): the control curve repeats exactly."""
    return seed * 1_000_003 + stage * 1009 + round(ratio * 1000)


def pruning(trial: TrialData, ratios=DEFAULT_RATIOS, seed: int = 0) -> dict:
    """Top-1 per stage and ratio, pruned by lowest gate and at random (Fig. 6 plus its control)."""
    result = {"top1": trial.top1(), "ratios": list(ratios), "stages": {}, **trial.describe()}
    for stage in gated_stages(trial.model):
        curves: dict[str, list[float]] = {"gate": [], "random": []}
        for ratio in ratios:
            with prune_stage(trial.model, stage, ratio, "gate"):
                curves["gate"].append(trial.top1())
            generator = torch.Generator().manual_seed(random_seed(seed, stage, ratio))
            with prune_stage(trial.model, stage, ratio, "random", generator):
                curves["random"].append(trial.top1())
        result["stages"][str(stage)] = curves
    return result


def correlation_sums(gates: np.ndarray) -> dict:
    """Sum of squared correlation coefficients between the channels of (images, C) weights.

    A channel whose weight never changes has no correlation; it is left out and counted.
    """
    values = gates.astype(np.float64)
    constant = np.ptp(values, axis=0) == 0  # exactly: a float32 std of equal values need not be 0
    live = values[:, ~constant]
    corr = np.corrcoef(live, rowvar=False) if live.shape[1] > 1 else np.ones((live.shape[1],) * 2)
    squared = np.square(np.atleast_2d(corr))
    with_diagonal = float(squared.sum())
    return {"with_diagonal": with_diagonal, "without_diagonal": with_diagonal - float(np.trace(squared)),
            "channels": int(gates.shape[1]), "constant_channels": int(constant.sum())}


def channel_weights(trial: TrialData, block: str | None = None, channels: int = TOP_CHANNELS,
                    keep_gates: bool = False) -> dict:
    """Every block's gates on the held-out fold: correlation sums per block and in total, the chosen
    block's correlation matrix (first ``channels``) and each of its first channels' top image."""
    blocks = list(gated_blocks(trial.model))
    block = block or next(iter(gated_stages(trial.model).values()))[-1]  # the paper's conv2_6 in ResNet-56
    with record_gates(trial.model) as recorded:
        top1 = trial.top1()
    gates = {name: torch.cat(recorded[name]).numpy() for name in blocks}
    sums = {name: correlation_sums(values) for name, values in gates.items()}
    chosen = gates[block][:, :channels].astype(np.float64)
    constant = np.ptp(chosen, axis=0) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.corrcoef(chosen, rowvar=False)
    matrix[constant, :] = np.nan
    matrix[:, constant] = np.nan
    top_positions = chosen.argmax(axis=0)  # per channel: the held-out image with the highest weight
    result = {
        "top1": top1, "block": block, "blocks": sums,
        "total": {"with_diagonal": sum(s["with_diagonal"] for s in sums.values()),
                  "without_diagonal": sum(s["without_diagonal"] for s in sums.values())},
        "correlation": [[None if np.isnan(v) else round(float(v), 5) for v in row] for row in np.atleast_2d(matrix)],
        "top_images": [int(trial.split.held_out[p]) for p in top_positions],
        "distinct_top_images": int(len(set(top_positions.tolist()))),
        "_thumbnails": trial.thumbnails(top_positions.tolist()),
        **trial.describe(),
    }
    if keep_gates:
        result["_gates"] = gates
    return result


ANALYSES = {"pruning": pruning, "channel_weights": channel_weights}


def run_trial_analysis(kind: str, spec: dict, weights_uri: str | None, options: dict, *, data_dir=None,
                       device=None, threads: int | None = None, tracking_uri: str | None = None) -> dict:
    """One trial's analysis of ``kind`` with ``options``; raises WeightsMissing without its weights.
    ``data_dir`` and ``tracking_uri`` come from the caller: a Ray worker does not share its environment.

    Keys starting with ``_`` hold arrays (thumbnails, gates) for files, not for SQL.
    """
    if threads:
        torch.set_num_threads(threads)
    trial = TrialData(spec, weights_uri, data_dir, device, tracking_uri)
    with torch.no_grad():
        return ANALYSES[kind](trial, **options)
