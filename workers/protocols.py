"""The paper's training policies as named, versioned configurations (Sec. 4.1 and 4.2).

A job may override any field; the override is validated here, becomes part of the protocol
and changes its hash, so two trials with equal protocol hashes were trained the same way.
Learning-rate milestones are fractions of the training budget, so they follow an override
of ``epochs`` or ``iterations`` (the paper's CIFAR 32k/48k of 64k is 0.5/0.75).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

# Which parameters skip weight decay (workers/optim.py says what each rule exempts).
NO_WEIGHT_DECAY = ("none", "srm", "recalibration", "recalibration+norm+bias")


class ProtocolError(ValueError):
    """Unknown protocol, unknown field, or a value that is not valid for its field."""


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    description: str = ""
    epochs: int | None = None          # training budget: epochs or iterations, exactly one set
    iterations: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    lr_schedule: str = "step"          # step | cosine | constant
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    image_size: int = 32
    load_size: int = 0                 # side images are stored/resized to; 0: derived from augment
    augment: str = "crop"              # crop (pad + random crop) | random_resized_crop | none
    padding: int = 4
    flip: bool = True
    eval_crop_ratio: float = 0.875     # eval: resize to image_size / ratio, centre crop (rrc only)
    amp: bool = True                   # bf16 autocast, on CUDA only
    channels_last: bool = True         # on CUDA only
    in_memory: str = "auto"            # auto | always | never (stream from disk)
    num_workers: int = 2               # DataLoader workers when streaming / decoding files
    fold_seed: int = 0                 # StratifiedKFold seed: the same folds for every trial
    eval_datasets: tuple[str, ...] = ()  # also evaluate on these datasets' held-out split
    log_checkpoint: bool = True        # upload the final checkpoint to MLflow
    no_weight_decay: str = "none"      # none | srm | recalibration | recalibration+norm+bias (workers/optim.py)
    hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", hashlib.sha256(
            json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest())

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "hash"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    def stored_size(self) -> int:
        """Side of the square images are held at before the train/eval crop."""
        if self.load_size:
            return self.load_size
        if self.augment == "random_resized_crop":
            return round(self.image_size / self.eval_crop_ratio)
        return self.image_size


# The paper protocols: version 2 added no_weight_decay="srm", what the authors' script did.
IMAGENET = Protocol(
    name="imagenet", version=2, description="ImageNet: SGD bs256 lr0.1 /10 every 30 of 90 epochs, "
    "random-resized crop 224 + flip, eval resize 256 centre 224",
    epochs=90, batch_size=256, lr=0.1, lr_milestones=(1 / 3, 2 / 3), image_size=224,
    augment="random_resized_crop", padding=0, num_workers=8, no_weight_decay="srm")
CIFAR = Protocol(
    name="cifar", version=2, description="CIFAR: SGD bs128 lr0.2, /10 at 32k and 48k of 64k iterations, "
    "pad 4 + random crop 32 + flip", iterations=64_000, batch_size=128, lr=0.2,
    lr_milestones=(0.5, 0.75), image_size=32, augment="crop", padding=4, no_weight_decay="srm")
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in [
    IMAGENET,
    CIFAR,
    dataclasses.replace(CIFAR, name="dtd", description="DTD: CIFAR's policy on Decathlon-style "
                        "images (shorter side 72, random crop 64 + flip)", image_size=64, load_size=72,
                        padding=0),
    dataclasses.replace(IMAGENET, name="office_home", description="Office-Home: ImageNet's policy "
                        "with batch 64 on one GPU", batch_size=64),
    Protocol(name="quick", version=1, description="demo and CI: a few epochs of a small model on CPU",
             epochs=6, batch_size=32, lr=0.05, weight_decay=5e-4, lr_schedule="cosine", lr_milestones=(),
             image_size=16, augment="crop", padding=2, num_workers=0),
]}

CHOICES = {"lr_schedule": ("step", "cosine", "constant"), "no_weight_decay": NO_WEIGHT_DECAY,
           "augment": ("crop", "random_resized_crop", "none"),
           "in_memory": ("auto", "always", "never")}
POSITIVE_INTS = {"batch_size", "image_size", "epochs", "iterations"}
NON_NEGATIVE_INTS = {"load_size", "padding", "num_workers", "fold_seed", "version"}
UNIT_FLOATS = {"momentum", "lr_gamma", "label_smoothing", "eval_crop_ratio"}
OVERRIDABLE = [f.name for f in dataclasses.fields(Protocol) if f.name not in ("name", "hash", "version", "description")]


def list_protocols() -> dict[str, Protocol]:
    return dict(PROTOCOLS)


def _check(name: str, value):
    """The value converted to the field's type, or ProtocolError saying what is valid."""
    def fail(valid: str):
        raise ProtocolError(f"protocol field {name!r}: {value!r} is not valid; expected {valid}")

    if name in ("epochs", "iterations") and value is None:
        return None
    if name in CHOICES:
        return value if value in CHOICES[name] else fail("one of " + ", ".join(CHOICES[name]))
    if name in POSITIVE_INTS | NON_NEGATIVE_INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value if value >= (1 if name in POSITIVE_INTS else 0) else fail(
            "a positive integer" if name in POSITIVE_INTS else "an integer >= 0")
    if name in ("amp", "channels_last", "nesterov", "flip", "log_checkpoint"):
        return value if isinstance(value, bool) else fail("true or false")
    if name == "description":
        return value if isinstance(value, str) else fail("a string")
    if name in ("lr_milestones", "eval_datasets"):
        if not isinstance(value, (list, tuple)):
            fail("a list")
        if name == "eval_datasets":
            return tuple(value) if all(isinstance(v, str) and v for v in value) else fail("a list of dataset names")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in value):
            fail("a list of fractions of the training budget, each between 0 and 1")
        return tuple(sorted(float(v) for v in value))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail("a number")
    value = float(value)
    if name == "lr" and value <= 0:
        fail("a number > 0")
    if name == "weight_decay" and value < 0:
        fail("a number >= 0")
    if name in UNIT_FLOATS and not 0 <= value <= 1:
        fail("a number between 0 and 1")
    return value


def get_protocol(name: str, overrides: dict | None = None) -> Protocol:
    """The named protocol with per-job overrides applied and validated."""
    if name not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    base = PROTOCOLS[name]
    if not overrides:
        return base
    if not isinstance(overrides, dict):
        raise ProtocolError(f"overrides must be a mapping of field -> value, got {type(overrides).__name__}")
    changes = {}
    for key, value in overrides.items():
        if key not in OVERRIDABLE:
            raise ProtocolError(f"unknown protocol field {key!r}; valid fields: {', '.join(OVERRIDABLE)}")
        changes[key] = _check(key, value)
    if "epochs" in changes and "iterations" in changes and changes["epochs"] and changes["iterations"]:
        raise ProtocolError("give either 'epochs' or 'iterations' as the training budget, not both")
    if changes.get("epochs"):
        changes.setdefault("iterations", None)
    if changes.get("iterations"):
        changes.setdefault("epochs", None)
    protocol = dataclasses.replace(base, **changes)
    if protocol.epochs is None and protocol.iterations is None:
        raise ProtocolError("the protocol needs a training budget: set 'epochs' or 'iterations'")
    if protocol.batch_size < 2:
        raise ProtocolError("protocol field 'batch_size': 1 is not valid with BatchNorm models "
                            "(batch statistics need at least 2 samples); use 2 or more")
    if protocol.load_size and protocol.load_size < protocol.image_size and protocol.augment != "random_resized_crop":
        raise ProtocolError(f"protocol field 'load_size': {protocol.load_size} is smaller than "
                            f"image_size {protocol.image_size}; use 0 (auto) or >= image_size")
    return protocol
