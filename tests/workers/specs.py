"""Tiny trial specs: cifar_resnet20 on 16x16 generated textures, 2 short epochs."""
from __future__ import annotations

from workers.spec import TrialSpec

TINY_TEXTURES = "textures[n_per_class=10,image_size=16]"
TINY_OVERRIDES = {"epochs": 2, "batch_size": 16, "image_size": 16}


def tiny_spec(kind: str = "baseline", fold: int | None = 0, n_folds: int | None = 5, seed: int = 0,
              dataset: str = TINY_TEXTURES, job_id: str | None = "job-1", repeat: int = 0,
              **overrides) -> TrialSpec:
    return TrialSpec(dataset=dataset, backbone="cifar_resnet20", variant={"kind": kind}, fold=fold,
                     n_folds=n_folds, seed=seed, repeat=repeat, protocol="quick",
                     overrides={**TINY_OVERRIDES, **overrides}, job_id=job_id)
