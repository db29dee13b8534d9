"""Names of MLflow runs, so the runs table says what each row is without opening it.

One separator, the middle dot, joins the parts: ``srm · fold 2 · repeat 0 · seed 0``.
"""
from __future__ import annotations

from .spec import TrialSpec

SEPARATOR = " · "


def job_run_name(job_id: str, name: str | None, spec: dict) -> str:
    """The job's own name, else ``textures · cifar_resnet20 · quick · 1a2b3c4d``."""
    if name:
        return name
    parts = [spec.get("dataset"), spec.get("backbone"), spec.get("protocol"), str(job_id)[:8]]
    return SEPARATOR.join(str(part) for part in parts if part)


def trial_run_name(spec: TrialSpec) -> str:
    """``srm · fold 2 · repeat 0 · seed 0`` (``official split`` when the spec has no fold)."""
    fold = "official split" if spec.fold is None else f"fold {spec.fold}"
    return SEPARATOR.join([spec.variant_label(), fold, f"repeat {spec.repeat}", f"seed {spec.seed}"])


def summary_run_name(variant: str, dataset: str, backbone: str) -> str:
    """``srm · textures · cifar_resnet20``: one variant's cross-validated summary."""
    return SEPARATOR.join([variant, dataset, backbone])
