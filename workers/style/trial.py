"""One style-transfer trial: train the transformer net of one variant on the content images against one style
image, log the loss curves, and keep stylized held-out images for the grid.

Needs only torch. A checkpoint is written every ``report_every`` steps (one point of the curves); called
again with the same checkpoint directory, the trial resumes there and reaches the same result as an
uninterrupted run (bit-for-bit on CPU: batch order comes from generators seeded by (seed, epoch), and the
model, optimizer and RNG states are restored).
"""
from __future__ import annotations

import base64
import io
import math
import time
from pathlib import Path

import torch

from .. import paths
from ..checkpoint import CHECKPOINT_FILE, load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from ..trial import Progress, _maybe_crash, describe_device, peak_memory_mb, pick_device
from ..version import code_version
from .inputs import GENERATED, load_content, load_style, resize_square
from .losses import content_loss, gram_matrix, normalize_batch, style_loss
from .network import build_transformer
from .perceptual import build_perceptual_net
from .protocol import StyleProtocol, get_style_protocol
from .spec import TASK, StyleTrialSpec

LOSS_KEYS = ("style_loss", "content_loss", "total_loss")


def png_base64(images: torch.Tensor) -> str:
    """uint8 (N, 3, H, W) side by side as one PNG, base64-encoded (it travels inside the JSON result)."""
    from PIL import Image

    strip = torch.cat(list(images), dim=2).permute(1, 2, 0).contiguous().numpy()
    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Losses:
    """The perceptual losses of one output batch against its content batch and the style."""

    def __init__(self, perceptual, style: torch.Tensor, protocol: StyleProtocol):
        self.perceptual, self.protocol = perceptual, protocol
        with torch.no_grad():
            self.style_grams = [gram_matrix(f) for f in perceptual(normalize_batch(style[None].float()))]

    def __call__(self, output: torch.Tensor, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output_features = self.perceptual(normalize_batch(output))
        with torch.no_grad():
            content_features = self.perceptual(normalize_batch(content))
        return (content_loss(output_features, content_features, self.protocol.content_weight),
                style_loss(output_features, self.style_grams, self.protocol.style_weight))


@torch.no_grad()
def held_out_losses(model, losses: Losses, images: torch.Tensor, batch_size: int) -> dict[str, float]:
    """Mean losses over the held-out content images, the model in eval mode (as it stylizes)."""
    model.eval()
    sums = {"content": 0.0, "style": 0.0}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].float()
        content, style = losses(model(batch), batch)
        sums["content"] += content.item() * len(batch)
        sums["style"] += style.item() * len(batch)
    n = max(len(images), 1)
    return {"held_out_content_loss": sums["content"] / n, "held_out_style_loss": sums["style"] / n,
            "held_out_total_loss": (sums["content"] + sums["style"]) / n}


def _train_steps(model, optimizer, losses: Losses, train: torch.Tensor, protocol: StyleProtocol, seed: int,
                 first: int, last: int, steps_per_epoch: int, bar: Progress) -> dict[str, float]:
    """Steps ``first``..``last``-1; returns the mean losses over them and the images per second."""
    model.train()
    sums = torch.zeros(2, device=train.device)
    started, orders = time.perf_counter(), {}
    for step in range(first, last):
        epoch, within = divmod(step, steps_per_epoch)
        if epoch not in orders:
            orders[epoch] = torch.randperm(len(train), generator=torch.Generator().manual_seed(
                seed * 1_000_003 + epoch))
        chosen = orders[epoch][within * protocol.batch_size:(within + 1) * protocol.batch_size]
        batch = train[chosen.to(train.device)].float()
        content, style = losses(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        (content + style).backward()
        optimizer.step()
        sums += torch.stack([content.detach(), style.detach()])
        bar.advance()
    seconds = time.perf_counter() - started
    content_mean, style_mean = (sums / (last - first)).tolist()
    return {"content_loss": content_mean, "style_loss": style_mean, "total_loss": content_mean + style_mean,
            "images_per_s": (last - first) * protocol.batch_size / seconds, "epoch_time_s": seconds}


def run_style_trial(spec: StyleTrialSpec | dict, *, data_dir=None, checkpoint_dir=None, report=None, device=None,
                    progress: bool | None = None, fault_injection: dict | None = None) -> dict:
    """Train and evaluate one style-transfer trial; resume from ``checkpoint_dir`` when it holds a checkpoint.

    Raises ValueError (StyleInputError, PerceptualNetError, StyleProtocolError) for a spec that cannot run.
    """
    spec = spec if isinstance(spec, StyleTrialSpec) else StyleTrialSpec.from_dict(spec)
    protocol = get_style_protocol(spec.protocol, spec.overrides)
    device = pick_device(device)
    data_dir = Path(data_dir) if data_dir else paths.data_dir()
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None

    images, fingerprint = load_content(spec.dataset, data_dir, protocol.image_size, protocol.max_images)
    held = min(protocol.held_out, max(len(images) - protocol.batch_size, 0))
    train, held_out = images[:len(images) - held].to(device), images[len(images) - held:].to(device)
    if len(train) < protocol.batch_size:
        raise ValueError(f"{spec.dataset}: {len(images)} content image(s); batch size {protocol.batch_size} "
                         "needs at least that many")
    style, style_digest = load_style(spec.style_image, data_dir)
    if spec.style_image.startswith(GENERATED):
        style = resize_square(style[None], protocol.image_size)[0]
    perceptual, perceptual_description = build_perceptual_net(spec.perceptual_net, data_dir, spec.perceptual_net_path)
    losses = Losses(perceptual.to(device), style.to(device), protocol)

    torch.manual_seed(spec.seed)
    model = build_transformer(spec.variant_label(), spec.placement, protocol.image_size).to(device)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.Adam(model.parameters(), lr=protocol.lr)
    steps_per_epoch = len(train) // protocol.batch_size
    total_steps = protocol.steps or protocol.epochs * steps_per_epoch
    n_points = math.ceil(total_steps / protocol.report_every)

    history, train_time, done = [], 0.0, 0
    state = load_checkpoint(checkpoint_dir)
    if state is not None:
        if {**state["spec"], "job_id": None} != {**spec.to_dict(), "job_id": None} \
                or state["protocol_hash"] != protocol.hash:
            raise ValueError(f"the checkpoint in {checkpoint_dir} belongs to another trial ({state['spec']}); "
                             "use an empty checkpoint dir for this one")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"], device)
        history, train_time, done = state["history"], state["train_time_s"], state["epoch"]
    resumed_from = done
    checkpoint_path = checkpoint_dir / CHECKPOINT_FILE if state is not None else None
    bar = Progress(progress, total_steps, f"{spec.variant_label()} style seed {spec.seed}")
    bar.advance(min(done * protocol.report_every, total_steps))
    try:
        for point in range(done, n_points):
            first, last = point * protocol.report_every, min((point + 1) * protocol.report_every, total_steps)
            metrics = _train_steps(model, optimizer, losses, train, protocol, spec.seed, first, last,
                                   steps_per_epoch, bar)
            if not math.isfinite(metrics["total_loss"]):
                raise FloatingPointError(f"the loss became {metrics['total_loss']} by step {last}; lower the "
                                         "learning rate")
            train_time += metrics["epoch_time_s"]
            metrics = {"epoch": point + 1, "step": last, **metrics}
            history.append(metrics)
            if checkpoint_dir is not None:
                checkpoint_path = save_checkpoint(checkpoint_dir, {
                    "epoch": point + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": rng_state(device), "history": history, "train_time_s": train_time,
                    "spec": spec.to_dict(), "protocol_hash": protocol.hash})
            if report is not None:
                report(dict(metrics, epochs=n_points), checkpoint_path)
            _maybe_crash(fault_injection, point + 1)
    finally:
        bar.close()

    evaluated = held_out_losses(model, losses, held_out, protocol.batch_size)
    with torch.no_grad():
        stylized = model(held_out.float()).clamp(0, 255).round().byte().cpu() if len(held_out) else None
    grid = min(protocol.grid_size, protocol.image_size)
    final = history[-1]
    return {
        "task": TASK, **{f"{key}_final": final[key] for key in LOSS_KEYS}, **evaluated,
        "perceptual_net": perceptual_description, "placement": spec.placement, "style_image": spec.style_image,
        "params": params, "train_time_s": train_time,
        "images_per_s": total_steps * protocol.batch_size / train_time if train_time else 0.0,
        "peak_memory_mb": peak_memory_mb(device), "device": describe_device(device),
        "epochs": n_points, "iterations": total_steps, "batch_size": protocol.batch_size,
        "dataset_fingerprint": fingerprint, "style_digest": style_digest,
        "split_hash": f"train {len(train)} / held-out {len(held_out)}",
        "split": f"first {len(train)} content images train, last {len(held_out)} held out",
        "repeat": 0, "num_train": len(train), "num_eval": len(held_out),
        "protocol": protocol.to_dict(), "protocol_hash": protocol.hash,
        "content_hash": spec.content_hash(fingerprint, style_digest, perceptual_description),
        "code_version": code_version(), "resumed_from_epoch": resumed_from, "history": history,
        "stylized_png": png_base64(resize_square(stylized, grid)) if stylized is not None else None,
        "content_png": png_base64(resize_square(held_out.cpu(), grid)) if len(held_out) else None,
        "style_png": png_base64(resize_square(style[None].cpu(), grid)),
        "checkpoint_path": str(checkpoint_path) if checkpoint_path else None,
    }
