"""Rows for tests that need finished jobs without running anything (results, leaderboard, claims)."""
from __future__ import annotations

import uuid

from service.models import Job, Trial, utcnow


def finished_job(session, top1: dict[str, list[float]], *, dataset="textures", backbone="cifar_resnet20",
                 protocol="quick", protocol_hash="p" * 64, status="succeeded", groups=None) -> Job:
    """A job whose trials ended with the given top-1 per variant (one value per fold)."""
    job = Job(id=uuid.uuid4().hex, name="made", spec={"dataset": dataset}, status=status, dataset=dataset,
              backbone=backbone, protocol=protocol, protocol_hash=protocol_hash,
              n_trials=sum(len(v) for v in top1.values()), cancel_requested=False, created_at=utcnow())
    for variant, values in top1.items():
        for fold, value in enumerate(values):
            metrics = {"top1": value, "top5": min(1.0, value + 0.2), "params": 1000 + len(variant),
                       "macs": 5000, "images_per_s": 100.0 + fold,
                       "group_top1": {g: value + i * 0.01 for i, g in enumerate(groups)} if groups else None}
            job.trials.append(Trial(variant=variant, fold=fold, seed=0, spec={"variant": variant},
                                    content_hash=uuid.uuid4().hex, status="succeeded", attempts=1, reused=False,
                                    top1=value, top5=metrics["top5"], metrics=metrics, finished_at=utcnow()))
    session.add(job)
    session.commit()
    return job


def queued_job(session, n_trials: int = 2, created_offset_s: float = 0.0) -> Job:
    from datetime import timedelta

    job = Job(id=uuid.uuid4().hex, spec={}, status="queued", dataset="textures", backbone="cifar_resnet20",
              protocol="quick", protocol_hash="q" * 64, n_trials=n_trials, cancel_requested=False,
              created_at=utcnow() + timedelta(seconds=created_offset_s))
    job.trials = [Trial(variant="baseline", fold=i, seed=0, spec={}, content_hash=uuid.uuid4().hex,
                        status="queued", attempts=0, reused=False) for i in range(n_trials)]
    session.add(job)
    session.commit()
    return job
