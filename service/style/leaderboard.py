"""The style-transfer leaderboard, kept apart from classification's: per (content, style image, perceptual net,
placement, protocol hash), every variant pooled over the succeeded trials of all finished style jobs, lowest
mean final total loss first. Read from the trials (style jobs write no classification summaries)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import FINISHED, Job, Trial
from service.stats import describe
from service.style.planning import BACKBONE

LOSSES = ("total_loss", "style_loss", "content_loss")


def style_leaderboard(session: Session, dataset: str | None = None, protocol: str | None = None) -> list[dict]:
    query = (select(Job.id, Job.dataset, Job.protocol, Job.protocol_hash, Job.spec, Trial.variant, Trial.metrics)
             .join(Trial, Trial.job_id == Job.id)
             .where(Job.backbone == BACKBONE, Job.status.in_(FINISHED), Trial.status == "succeeded"))
    if dataset:
        query = query.where(Job.dataset == dataset)
    if protocol:
        query = query.where(Job.protocol == protocol)
    boards: dict[tuple, dict[str, Any]] = {}
    members: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for job_id, ds, proto, phash, spec, variant, metrics in session.execute(query):
        if (spec or {}).get("task") != "style_transfer" or not metrics:
            continue
        key = (ds, spec.get("style_image"), metrics.get("perceptual_net"), spec.get("placement"), phash)
        boards.setdefault(key, {"task": "style_transfer", "dataset": ds, "style_image": key[1],
                                "perceptual_net": key[2], "placement": key[3], "protocol": proto,
                                "protocol_hash": phash, "rows": []})
        members[key][variant].append((job_id, metrics))
    for key, board in boards.items():
        for variant, found in members[key].items():
            row: dict[str, Any] = {"variant": variant, "n_jobs": len({j for j, _ in found}), "n_trials": len(found)}
            for loss in LOSSES:
                described = describe([m.get(f"{loss}_final") for _, m in found])
                row[f"{loss}_mean"], row[f"{loss}_std"] = described["mean"], described["std"]
            board["rows"].append(row)
        board["rows"].sort(key=lambda r: r["total_loss_mean"] if r["total_loss_mean"] is not None else float("inf"))
        for rank, row in enumerate(board["rows"], start=1):
            row["rank"] = rank
        board["n_jobs"] = max(r["n_jobs"] for r in board["rows"])
        board["ranked_by"] = "total_loss_mean, lower is better"
    return sorted(boards.values(), key=lambda b: (b["dataset"], str(b["style_image"]), -b["n_jobs"]))
