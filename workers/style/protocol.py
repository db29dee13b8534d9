"""Style-transfer training protocols: the official fast-neural-style example's settings, and a quick one."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass


class StyleProtocolError(ValueError):
    """An unknown style protocol or a bad override; the message names the field."""


@dataclass(frozen=True)
class StyleProtocol:
    """How one style-transfer trial trains. ``steps`` (optimizer steps) wins over ``epochs`` when set;
    ``report_every`` steps make one point of the curves and one checkpoint."""

    name: str
    description: str
    image_size: int = 256
    batch_size: int = 4
    lr: float = 1e-3
    content_weight: float = 1e5
    style_weight: float = 1e10
    epochs: int = 2
    steps: int | None = None
    report_every: int = 500
    held_out: int = 4          # content images kept out of training: the stylized grid and held-out losses
    max_images: int | None = None  # use at most this many content images (the first, in sorted order)
    grid_size: int = 128       # pixel size of each stylized image kept for the grid

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """What the trial's numbers depend on: every field but the description."""
        fields = {k: v for k, v in self.to_dict().items() if k != "description"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


STYLE_PROTOCOLS = {
    "style_transfer": StyleProtocol(
        "style_transfer",
        "the official PyTorch fast_neural_style example's training defaults (used by the paper, Sec. 4.3): "
        "Adam lr 1e-3, batch size 4, 256x256 content images, content weight 1e5 at relu2_2, style weight 1e10 "
        "over Gram matrices at relu1_2, relu2_2, relu3_3, relu4_3, 2 epochs; a curve point every 500 steps"),
    "style_quick": StyleProtocol(
        "style_quick",
        "the example's losses, weights and optimizer on 32x32 images for 60 steps (a curve point every 10): "
        "for tests and the generated demo on CPU", image_size=32, steps=60, report_every=10, grid_size=32),
}
INT_FIELDS = ("image_size", "batch_size", "epochs", "steps", "report_every", "held_out", "max_images", "grid_size")
FLOAT_FIELDS = ("lr", "content_weight", "style_weight")


def list_style_protocols() -> dict[str, StyleProtocol]:
    return dict(STYLE_PROTOCOLS)


def get_style_protocol(name: str, overrides: dict | None = None) -> StyleProtocol:
    """The protocol with ``overrides``; unknown names, fields and bad values raise StyleProtocolError."""
    if name not in STYLE_PROTOCOLS:
        raise StyleProtocolError(f"unknown style protocol {name!r}; valid: {', '.join(STYLE_PROTOCOLS)}")
    protocol = STYLE_PROTOCOLS[name]
    changes = dict(overrides or {})
    valid = (*INT_FIELDS, *FLOAT_FIELDS)
    for key, value in changes.items():
        if key not in valid:
            raise StyleProtocolError(f"protocol field '{key}' is not a style protocol field; valid: {', '.join(valid)}")
        optional = key in ("steps", "max_images")
        if value is None and optional:
            continue
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or (key in INT_FIELDS and int(value) != value) or value <= 0:
            raise StyleProtocolError(f"protocol field '{key}' must be a positive "
                                     f"{'integer' if key in INT_FIELDS else 'number'}, got {value!r}")
        changes[key] = int(value) if key in INT_FIELDS else float(value)
    protocol = dataclasses.replace(protocol, **changes)
    if protocol.batch_size < 2:
        raise StyleProtocolError("protocol field 'batch_size' must be at least 2 (BatchNorm variants train on it)")
    if protocol.image_size < 16 or protocol.image_size % 4:
        raise StyleProtocolError("protocol field 'image_size' must be a multiple of 4 and at least 16 (the "
                                 "transformer net halves it twice and doubles it back)")
    return protocol
