"""Claims with a lease on a queued row (a job or an analysis), shared by the dispatcher's loops.

A row is claimable when queued, or running under a lease that ran out (its claimant died). Claims
use SELECT ... FOR UPDATE SKIP LOCKED plus a conditional UPDATE, so several dispatchers may share
one PostgreSQL; the first claim stamps ``started_at``.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.models import utcnow


def claim(sessions: sessionmaker[Session], table, owner: str, lease: timedelta) -> str | None:
    """The id of the oldest claimable row of ``table``, now running under ``owner``; None if none."""
    with sessions() as session:
        now = utcnow()
        claimable = or_(table.status == "queued", and_(table.status == "running", table.lease_expires_at < now))
        row_id = session.scalars(select(table.id).where(claimable).order_by(table.created_at).limit(1)
                                 .with_for_update(skip_locked=True)).first()
        if row_id is None:
            return None
        taken = session.execute(
            update(table).where(table.id == row_id, claimable)
            .values(status="running", lease_owner=owner, lease_expires_at=now + lease)
        ).rowcount
        if taken == 1:
            session.execute(update(table).where(table.id == row_id, table.started_at.is_(None))
                            .values(started_at=now))
        session.commit()
    return row_id if taken == 1 else None


def renew(sessions: sessionmaker[Session], table, row_id: str, owner: str, lease: timedelta) -> bool:
    """Extend the lease; False when the row is no longer running under ``owner``."""
    with sessions() as session:
        owned = session.execute(
            update(table).where(table.id == row_id, table.lease_owner == owner, table.status == "running")
            .values(lease_expires_at=utcnow() + lease)).rowcount == 1
        session.commit()
    return owned
