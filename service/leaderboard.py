"""The leaderboard table: one row per (dataset, backbone, protocol hash, variant), kept as jobs finish.

Re-aggregating every summary on each request made GET /v1/leaderboard cost more with every job
ever run. Instead, whenever a job's summaries are written (it finished or was cancelled), its
group is aggregated once from scratch (service.results.aggregate_leaderboard) and the group's rows
replace the old ones. A request then reads rows of the leaderboard alone, already ranked.
On PostgreSQL a transaction-level advisory lock per group serialises refreshes of one group, so
two dispatchers finishing jobs of the same group cannot leave a board that misses one of them.
"""
from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from service.models import LeaderboardRow, VariantSummary, utcnow
from service.results import aggregate_leaderboard, board_order


def _lock_group(session: Session, dataset: str, backbone: str, protocol_hash: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite has one writer at a time already
    digest = hashlib.blake2b(f"{dataset}\0{backbone}\0{protocol_hash}".encode(), digest_size=8).digest()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": int.from_bytes(digest, "big", signed=True)})


def refresh_group(session: Session, dataset: str, backbone: str, protocol_hash: str) -> None:
    """Replace one group's rows with a from-scratch aggregation of its summaries (in the caller's transaction)."""
    _lock_group(session, dataset, backbone, protocol_hash)
    session.flush()
    session.execute(delete(LeaderboardRow).where(LeaderboardRow.dataset == dataset,
                                                 LeaderboardRow.backbone == backbone,
                                                 LeaderboardRow.protocol_hash == protocol_hash))
    now = utcnow()
    for board in aggregate_leaderboard(session, dataset=dataset, backbone=backbone, protocol_hash=protocol_hash):
        session.add_all(LeaderboardRow(dataset=dataset, backbone=backbone, protocol=board["protocol"],
                                       protocol_hash=protocol_hash, variant=row["variant"], position=position,
                                       row=row, updated_at=now)
                        for position, row in enumerate(board["rows"]))
    session.flush()


def rebuild(session: Session) -> int:
    """Every group's rows from the summaries (the migration's backfill, and a repair); returns the groups."""
    session.execute(delete(LeaderboardRow))
    groups = session.execute(select(VariantSummary.dataset, VariantSummary.backbone,
                                    VariantSummary.protocol_hash).distinct()).all()
    for dataset, backbone, protocol_hash in groups:
        refresh_group(session, dataset, backbone, protocol_hash)
    return len(groups)


def read_leaderboard(session: Session, dataset: str | None = None, backbone: str | None = None,
                     protocol: str | None = None) -> list[dict[str, Any]]:
    """Boards as aggregate_leaderboard gives them, read from the table: cost grows with the boards asked for."""
    query = select(LeaderboardRow.dataset, LeaderboardRow.backbone, LeaderboardRow.protocol,
                   LeaderboardRow.protocol_hash, LeaderboardRow.row)
    for column, value in ((LeaderboardRow.dataset, dataset), (LeaderboardRow.backbone, backbone),
                          (LeaderboardRow.protocol, protocol)):
        if value:
            query = query.where(column == value)
    query = query.order_by(LeaderboardRow.dataset, LeaderboardRow.backbone, LeaderboardRow.protocol_hash,
                           LeaderboardRow.position)
    boards: dict[tuple, dict[str, Any]] = {}
    for ds, bb, proto, phash, row in session.execute(query):
        board = boards.setdefault((ds, bb, phash), {"dataset": ds, "backbone": bb, "protocol": proto,
                                                    "protocol_hash": phash, "rows": []})
        board["rows"].append(row)
    result = list(boards.values())
    for board in result:
        board["n_jobs"] = max(r["n_jobs"] for r in board["rows"])
    result.sort(key=board_order)
    return result
