"""Rows for tests that need finished jobs without running anything (results, leaderboard, claims)."""
from __future__ import annotations

import uuid

from service.models import Job, Trial, utcnow


NUM_TRAIN, NUM_EVAL = 400, 100  # a 5-fold split of 500 images: n_test/n_train = 1/4


def finished_job(session, top1: dict[str, list[float | None]], *, dataset="textures", backbone="cifar_resnet20",
                 protocol="quick", protocol_hash="p" * 64, status="succeeded", groups=None, folds=None,
                 spec=None, study_id=None) -> Job:
    """A job whose trials ended with the given top-1 (percent) per variant: one value per fold, or with
    `folds` set, per (repeat, fold) in repeat-major order. None is a failed trial."""
    job = Job(id=uuid.uuid4().hex, name="made", spec={"dataset": dataset, **(spec or {})}, status=status,
              dataset=dataset, backbone=backbone, protocol=protocol, protocol_hash=protocol_hash,
              n_trials=sum(len(v) for v in top1.values()), cancel_requested=False, created_at=utcnow(),
              study_id=study_id)
    for variant, values in top1.items():
        k = folds or len(values)
        for i, value in enumerate(values):
            fold, repeat = i % k, i // k
            if value is None:
                job.trials.append(Trial(variant=variant, repeat=repeat, fold=fold, seed=0, spec={"n_folds": k},
                                        content_hash=uuid.uuid4().hex, status="failed", attempts=1, reused=False,
                                        error="RuntimeError: diverged", finished_at=utcnow()))
                continue
            metrics = {"top1": value, "top5": min(100.0, value + 20), "params": 1000 + len(variant),
                       "macs": 5000, "images_per_s": 100.0 + fold, "num_train": NUM_TRAIN, "num_eval": NUM_EVAL,
                       "group_top1": {g: value + i * 1.0 for i, g in enumerate(groups)} if groups else None}
            job.trials.append(Trial(variant=variant, repeat=repeat, fold=fold, seed=0, spec={"n_folds": k},
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
