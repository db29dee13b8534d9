"""One trial: train a model on one fold of a dataset under a protocol, evaluate it, return numbers.

Needs only torch (no Ray, no MLflow), so it runs and times alone on a bare GPU machine.
A checkpoint is written at the end of every epoch; called again with the same checkpoint
directory, the trial resumes there and reaches the same result as an uninterrupted run
(bit-for-bit on CPU with in-memory data: data order and augmentation are drawn from
generators seeded by (seed, epoch), and the model, optimizer, scheduler and RNG states are restored).
"""
from __future__ import annotations

import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import paths
from .batches import InMemoryBatches, StreamingBatches
from .checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from .data import DatasetError, LoadedDataset, load_dataset
from .data.augment import DeviceAugment
from .folds import Split, make_split
from .protocols import Protocol, get_protocol
from .spec import TrialSpec
from .version import code_version

ReportFn = Callable[[dict, Path], None]  # (epoch metrics, checkpoint path) after each epoch


def build_model(spec: TrialSpec, num_classes: int, image_size: int) -> nn.Module:
    from srm_models import create_model

    return create_model(spec.model_name(), num_classes=num_classes, input_size=image_size,
                        **spec.variant_options())


def count_complexity(model: nn.Module, image_size: int) -> tuple[int, int]:
    """(parameters, multiply-accumulates per image) as srm_models counts them."""
    from srm_models import complexity

    counted = complexity(model, (3, image_size, image_size))
    return int(counted.params), int(counted.macs)


def make_optimizer(model: nn.Module, protocol: Protocol) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                           weight_decay=protocol.weight_decay, nesterov=protocol.nesterov)


def make_scheduler(optimizer, protocol: Protocol, total_steps: int):
    """Stepped once per iteration; milestones are fractions of the whole budget."""
    if protocol.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if protocol.lr_schedule == "step":
        milestones = sorted({max(1, round(f * total_steps)) for f in protocol.lr_milestones})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=protocol.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch; on CPU the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def evaluate(model: nn.Module, batches, indices: np.ndarray, batch_size: int, num_classes: int,
             autocast, group_ids: np.ndarray | None = None, group_names: list[str] | None = None) -> dict:
    """Loss, top-1 and top-5 (in percent) on ``indices``; per-group top-1 when groups are given."""
    model.eval()
    loss_sum, top1, top5, seen = 0.0, 0, 0, 0
    group_correct = np.zeros(len(group_names or ()), dtype=np.int64)
    group_total = np.zeros_like(group_correct)
    k = min(5, num_classes)
    for images, labels, chosen in batches.eval(indices, batch_size):
        with autocast():
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        hits = logits.topk(k, dim=1).indices == labels[:, None]
        correct = hits[:, 0].cpu().numpy()
        top1 += int(correct.sum())
        top5 += int(hits.any(dim=1).sum())
        seen += len(labels)
        if group_ids is not None:
            groups = group_ids[chosen.cpu().numpy()]
            np.add.at(group_correct, groups, correct)
            np.add.at(group_total, groups, 1)
    result = {"loss": loss_sum / max(seen, 1), "top1": 100.0 * top1 / max(seen, 1),
              "top5": 100.0 * top5 / max(seen, 1), "num_samples": seen}
    if group_names:
        result["group_top1"] = {name: 100.0 * c / t for name, c, t in
                                zip(group_names, group_correct, group_total) if t}
    return result


def train_epoch(model: nn.Module, optimizer, scheduler, batches, autocast, label_smoothing: float,
                bar: "Progress") -> tuple[float, float, int, float]:
    """One pass over ``batches``, the scheduler stepped per iteration.

    Returns (mean loss, accuracy in percent, images seen, seconds). Losses and hits are summed
    on the device and read once at the end, so the loop never waits for the GPU.
    """
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for images, labels, _ in batches:
        with autocast():
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
        bar.advance()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return loss_sum.item() / seen, 100.0 * correct.item() / seen, seen, time.perf_counter() - started


class Progress:
    """A rich progress bar over training steps when attached to a terminal; silent otherwise."""

    def __init__(self, enabled: bool | None, total: int, label: str):
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if enabled:
            from rich.markup import escape
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(transient=False)
            self.task = self.bar.add_task(escape(label), total=total)
            self.bar.start()

    def advance(self, steps: int = 1, **fields) -> None:
        if self.bar:
            self.bar.update(self.task, advance=steps, **fields)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()


def _batches_for(data: LoadedDataset, protocol: Protocol, device: torch.device):
    augment = DeviceAugment(protocol.augment, protocol.image_size, protocol.padding, protocol.flip,
                            data.mean, data.std, device,
                            channels_last=protocol.channels_last and device.type == "cuda")
    if data.in_memory:
        return InMemoryBatches(data, augment, device)
    return StreamingBatches(data, augment, device, protocol)


def _extra_evaluations(model, spec, protocol, data, data_dir, device, autocast) -> dict:
    """The trained model on other datasets with the same classes (Table 3: SIN-trained, ImageNet-tested)."""
    results = {}
    for name in protocol.eval_datasets:
        other = load_dataset(name, data_dir, size=protocol.stored_size(), in_memory=protocol.in_memory,
                             num_workers=protocol.num_workers)
        if other.index.class_names != data.index.class_names:
            raise DatasetError(f"eval dataset {name!r} has different classes from {spec.dataset!r}; "
                               "extra evaluations need the same class list")
        split = make_split(other.index, spec.n_folds, spec.fold, protocol.fold_seed, spec.repeat)
        results[name] = evaluate(model, _batches_for(other, protocol, device), split.held_out,
                                 protocol.batch_size * 2, other.num_classes, autocast)
        results[name]["split_hash"] = split.hash
    return results


def _maybe_crash(fault_injection: dict | None, epochs_done: int) -> None:
    """Test hook: kill this process once after a given epoch, to prove resumption (see tests)."""
    if not fault_injection or epochs_done != fault_injection.get("crash_after_epoch"):
        return
    marker = Path(fault_injection["marker"])
    if marker.exists():
        return
    marker.write_text(f"crashed after epoch {epochs_done} in pid {os.getpid()}\n")
    time.sleep(float(fault_injection.get("delay_s", 1.0)))  # let a driver take the last report
    os._exit(17)


def run_trial(spec: TrialSpec | dict, *, data_dir=None, checkpoint_dir=None, report: ReportFn | None = None,
              device=None, progress: bool | None = None, fault_injection: dict | None = None) -> dict:
    """Train and evaluate one trial; resume from ``checkpoint_dir`` when it holds a checkpoint.

    Raises DatasetError / ProtocolError / ValueError for a spec that cannot run (not retried),
    anything else for a crash (retried by the experiment from the last checkpoint).
    """
    spec = spec if isinstance(spec, TrialSpec) else TrialSpec.from_dict(spec)
    protocol = get_protocol(spec.protocol, spec.overrides)
    device = pick_device(device)
    data_dir = Path(data_dir) if data_dir else paths.data_dir()
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None

    data = load_dataset(spec.dataset, data_dir, size=protocol.stored_size(), in_memory=protocol.in_memory,
                        num_workers=protocol.num_workers)
    split: Split = make_split(data.index, spec.n_folds, spec.fold, protocol.fold_seed, spec.repeat)
    torch.manual_seed(spec.seed)
    model = build_model(spec, data.num_classes, protocol.image_size)
    params, macs = count_complexity(model, protocol.image_size)
    on_cuda = device.type == "cuda"
    model.to(device, memory_format=torch.channels_last if protocol.channels_last and on_cuda
             else torch.preserve_format)
    optimizer = make_optimizer(model, protocol)

    batch_size = min(protocol.batch_size, len(split.train))
    if batch_size < 2:
        raise DatasetError(f"{spec.dataset}: the training split has {len(split.train)} sample(s); "
                           "BatchNorm training needs at least 2")
    steps_per_epoch = len(split.train) // batch_size  # the last incomplete batch is dropped
    total_steps = protocol.iterations or protocol.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = make_scheduler(optimizer, protocol, total_steps)
    batches = _batches_for(data, protocol, device)
    use_amp = protocol.amp and on_cuda

    def autocast():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp)

    history, train_time, start_epoch = [], 0.0, 0
    state = load_checkpoint(checkpoint_dir)
    if state is not None:
        if state["protocol_hash"] != protocol.hash or {**state["spec"], "job_id": None} != {**spec.to_dict(), "job_id": None}:
            raise ValueError(f"the checkpoint in {checkpoint_dir} belongs to another trial "
                             f"({state['spec']}); use an empty checkpoint dir for this one")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"], device)
        history, train_time, start_epoch = state["history"], state["train_time_s"], state["epoch"]
    resumed_from = start_epoch
    checkpoint_path = checkpoint_dir / "last.pt" if state is not None else None
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)

    bar = Progress(progress, total_steps, f"{spec.variant_label()} {spec.dataset} fold {spec.fold}")
    bar.advance(min(start_epoch * steps_per_epoch, total_steps))
    train_order_ids = torch.as_tensor(split.train)
    try:
        for epoch in range(start_epoch, epochs):
            steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
            epoch_seed = spec.seed * 1_000_003 + epoch
            order = train_order_ids[torch.randperm(len(split.train),
                                                   generator=torch.Generator().manual_seed(epoch_seed))]
            lr = optimizer.param_groups[0]["lr"]
            train_loss, train_acc, seen, epoch_time = train_epoch(
                model, optimizer, scheduler, batches.train(order, batch_size, steps, epoch_seed),
                autocast, protocol.label_smoothing, bar)
            train_time += epoch_time
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training loss became {train_loss} in epoch {epoch + 1}; "
                                         "lower the learning rate")
            held = evaluate(model, batches, split.held_out, batch_size * 2, data.num_classes, autocast)
            metrics = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                       "val_loss": held["loss"], "val_top1": held["top1"], "val_top5": held["top5"], "lr": lr,
                       "images_per_s": seen / epoch_time, "epoch_time_s": epoch_time}
            history.append(metrics)
            if checkpoint_dir is not None:
                checkpoint_path = save_checkpoint(checkpoint_dir, {
                    "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "rng": rng_state(device), "history": history,
                    "train_time_s": train_time, "spec": spec.to_dict(), "protocol_hash": protocol.hash})
            if report is not None:
                report(dict(metrics, epochs=epochs), checkpoint_path)
            _maybe_crash(fault_injection, epoch + 1)
    finally:
        bar.close()

    final = evaluate(model, batches, split.held_out, batch_size * 2, data.num_classes, autocast,
                     data.index.group_ids, data.index.group_names)
    trained_images = sum(h["images_per_s"] * h["epoch_time_s"] for h in history)
    return {
        "top1": final["top1"], "top5": final["top5"], "loss": final["loss"],
        "group_top1": final.get("group_top1"),
        "params": params, "macs": macs, "train_time_s": train_time,
        "images_per_s": trained_images / train_time if train_time else 0.0,
        "peak_memory_mb": peak_memory_mb(device), "device": describe_device(device),
        "epochs": epochs, "iterations": total_steps, "batch_size": batch_size,
        "dataset_fingerprint": data.fingerprint, "split_hash": split.hash, "split": split.description,
        "repeat": spec.repeat, "num_train": int(len(split.train)), "num_eval": int(len(split.held_out)),
        "protocol": protocol.to_dict(), "protocol_hash": protocol.hash,
        "content_hash": spec.content_hash(data.fingerprint), "code_version": code_version(),
        "resumed_from_epoch": resumed_from, "history": history,
        "extra_evals": _extra_evaluations(model, spec, protocol, data, data_dir, device, autocast),
        "checkpoint_path": str(checkpoint_path) if checkpoint_path else None,
    }
