"""TrialSpec: one (dataset, backbone, variant, fold, seed, protocol) training run, as plain data."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import srm_models

from .plugins import ensure_plugin
from .protocols import get_protocol
from .spec_io import JsonSpec
from .version import code_version


@dataclass(frozen=True)
class TrialSpec(JsonSpec):
    """What determines a trial's result (plus the job it belongs to, which does not).

    ``repeat`` is the repetition of k-fold cross-validation whose split ``fold`` indexes (0: the
    first; each later one reshuffles with its own seed, see workers.folds.repeat_seed).
    """

    dataset: str
    backbone: str
    variant: dict
    fold: int | None = None
    n_folds: int | None = None
    seed: int = 0
    repeat: int = 0
    protocol: str = "quick"
    overrides: dict = field(default_factory=dict)
    job_id: str | None = None
    plugin: dict | None = None  # a plugin kind's module, version, source hash (filled in when None)

    def __post_init__(self) -> None:
        """Check the kind; a plugin kind's trial imports its plugin (on a Ray worker too) and records it."""
        if not isinstance(self.repeat, int) or self.repeat < 0:
            raise ValueError(f"repeat must be an integer >= 0; got {self.repeat!r}")
        kind = self.variant.get("kind") if isinstance(self.variant, dict) else None
        if self.plugin is not None and isinstance(kind, str):
            ensure_plugin(self.plugin, kind)
        valid = srm_models.variant_kinds()
        if kind not in valid:
            raise ValueError(f"variant must be a dict with 'kind' one of {', '.join(valid)}; got {self.variant!r}")
        if self.plugin is None:
            object.__setattr__(self, "plugin", srm_models.provenance(srm_models.get_kind(kind).name))

    def variant_options(self) -> dict:
        """The variant's keyword arguments for the model (ablations), without its kind."""
        return {k: v for k, v in self.variant.items() if k != "kind"}

    def variant_label(self) -> str:
        """``baseline``, ``srm``, ``srm(pooling=avg+max)``: what tables group trials by."""
        options = self.variant_options()
        inner = ",".join(f"{k}={options[k]}" for k in sorted(options))
        return f"{self.variant['kind']}({inner})" if inner else self.variant["kind"]

    def model_name(self) -> str:
        return srm_models.model_name(self.variant["kind"], self.backbone)

    def content_hash(self, dataset_fingerprint: str) -> str:
        """Equal hashes mean equal results are expected: everything but the job id goes in.

        Repeat 0 leaves the payload as it was before repeats existed, so finished trials keep
        their hashes and are reused."""
        payload = {
            "dataset_fingerprint": dataset_fingerprint, "backbone": self.backbone,
            "variant": self.variant, "fold": self.fold, "n_folds": self.n_folds, "seed": self.seed,
            "protocol_hash": get_protocol(self.protocol, self.overrides).hash,
            "code_version": code_version(),
        }
        if self.plugin is not None:  # a changed plugin is another trial
            payload["plugin"] = self.plugin
        if self.repeat:
            payload["repeat"] = self.repeat
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
