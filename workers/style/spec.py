"""StyleTrialSpec: one (content, style image, variant, seed, protocol) style-transfer training run, as plain data.

It answers the same questions a classification TrialSpec does (``variant_label``, ``model_name``,
``content_hash``, ``to_dict``), so the experiment, the MLflow runs and the dispatcher treat both alike.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..spec_io import JsonSpec
from ..version import code_version
from .network import PLACEMENTS, parse_variant
from .protocol import get_style_protocol

TASK = "style_transfer"
BACKBONE = "transformer_net"


@dataclass(frozen=True)
class StyleTrialSpec(JsonSpec):
    dataset: str                       # the content images (see workers.style.inputs)
    style_image: str
    variant: dict                      # {"kind": "bn+srm"}
    seed: int = 0
    protocol: str = "style_quick"
    overrides: dict = field(default_factory=dict)
    perceptual_net: str = "vgg16"
    perceptual_net_path: str | None = None
    placement: str = "residual"
    job_id: str | None = None
    task: str = TASK

    # What the classification spec has and a style trial has one of: no folds, no repeats, one network.
    fold = None
    n_folds = None
    repeat = 0
    backbone = BACKBONE

    def __post_init__(self) -> None:
        if self.task != TASK:
            raise ValueError(f"a StyleTrialSpec has task {TASK!r}, got {self.task!r}")
        kind = self.variant.get("kind") if isinstance(self.variant, dict) else None
        if not isinstance(kind, str):
            raise ValueError(f"variant must be a dict with a 'kind'; got {self.variant!r}")
        parse_variant(kind)
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {self.placement!r}")

    def variant_label(self) -> str:
        return self.variant["kind"]

    def model_name(self) -> str:
        return f"{BACKBONE}[{self.variant_label()}]"

    def content_hash(self, content_fingerprint: str, style_digest: str, perceptual_digest: str) -> str:
        """Equal hashes mean equal results are expected: everything but the job id goes in."""
        payload = {"task": TASK, "content_fingerprint": content_fingerprint, "style_digest": style_digest,
                   "perceptual": perceptual_digest, "variant": self.variant, "seed": self.seed,
                   "placement": self.placement,
                   "protocol_hash": get_style_protocol(self.protocol, self.overrides).hash,
                   "code_version": code_version()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
