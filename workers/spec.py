"""TrialSpec: one (dataset, backbone, variant, fold, seed, protocol) training run, as plain data."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .protocols import get_protocol
from .version import code_version

VARIANT_KINDS = ("baseline", "se", "ge", "srm", "cbam")


@dataclass(frozen=True)
class TrialSpec:
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

    def __post_init__(self) -> None:
        if not isinstance(self.repeat, int) or self.repeat < 0:
            raise ValueError(f"repeat must be an integer >= 0; got {self.repeat!r}")
        kind = self.variant.get("kind") if isinstance(self.variant, dict) else None
        if kind not in VARIANT_KINDS:
            raise ValueError(f"variant must be a dict with 'kind' one of {', '.join(VARIANT_KINDS)}; "
                             f"got {self.variant!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrialSpec fields {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**data)

    def variant_options(self) -> dict:
        """The variant's keyword arguments for the model (ablations), without its kind."""
        return {k: v for k, v in self.variant.items() if k != "kind"}

    def variant_label(self) -> str:
        """``baseline``, ``srm``, ``srm(pooling=avg+max)``: what tables group trials by."""
        options = self.variant_options()
        inner = ",".join(f"{k}={options[k]}" for k in sorted(options))
        return f"{self.variant['kind']}({inner})" if inner else self.variant["kind"]

    def model_name(self) -> str:
        kind = self.variant["kind"]
        return self.backbone if kind == "baseline" else f"{kind}_{self.backbone}"

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
        if self.repeat:
            payload["repeat"] = self.repeat
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
