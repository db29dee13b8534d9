"""Claims with a lease on a queued row (a job or an analysis), shared by the dispatcher's loops.

A row is claimable when queued, or running under a lease that ran out (its claimant died). Claims
use SELECT ... FOR UPDATE SKIP LOCKED plus a conditional UPDATE, so several dispatchers may share
one PostgreSQL; the first claim stamps ``started_at``.

Jobs are claimed round-robin by submitter (``claim_job``): the submitter with the fewest running
jobs goes first, ties to the one whose last job started longest ago, so one user's 50 queued
jobs do not starve another's one.
"""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.models import Job, utcnow

NEVER = datetime.min  # the last start of a submitter who never had a job started


def _claimable(table, now: datetime):
    return or_(table.status == "queued", and_(table.status == "running", table.lease_expires_at < now))


def _take(session: Session, table, row_id: str, owner: str, lease: timedelta, now: datetime) -> bool:
    """The conditional UPDATE that makes a selected row ours (False when another claimant was first)."""
    taken = session.execute(
        update(table).where(table.id == row_id, _claimable(table, now))
        .values(status="running", lease_owner=owner, lease_expires_at=now + lease)
    ).rowcount == 1
    if taken:
        session.execute(update(table).where(table.id == row_id, table.started_at.is_(None)).values(started_at=now))
    return taken


def claim(sessions: sessionmaker[Session], table, owner: str, lease: timedelta) -> str | None:
    """The id of the oldest claimable row of ``table``, now running under ``owner``; None if none."""
    with sessions() as session:
        now = utcnow()
        row_id = session.scalars(select(table.id).where(_claimable(table, now)).order_by(table.created_at).limit(1)
                                 .with_for_update(skip_locked=True)).first()
        if row_id is None:
            return None
        taken = _take(session, table, row_id, owner, lease, now)
        session.commit()
    return row_id if taken else None


def _submitter_is(who: str | None):
    return Job.submitted_by.is_(None) if who is None else Job.submitted_by == who


def submitters_in_turn(session: Session, now: datetime) -> list[str | None]:
    """Submitters with a claimable job, whose turn comes first first: fewest running jobs, then the
    longest since their last job started, then the oldest waiting job."""
    waiting = dict(session.execute(select(Job.submitted_by, func.min(Job.created_at))
                                   .where(_claimable(Job, now)).group_by(Job.submitted_by)).all())
    if not waiting:
        return []
    running = dict(session.execute(
        select(Job.submitted_by, func.count()).where(Job.status == "running", Job.lease_expires_at >= now)
        .group_by(Job.submitted_by)).all())
    last_start = {who: session.scalar(select(func.max(Job.started_at)).where(_submitter_is(who)))
                  for who in waiting}

    def turn(who: str | None) -> tuple:
        started = last_start[who]
        return running.get(who, 0), (started.replace(tzinfo=None) if started else NEVER), waiting[who].replace(
            tzinfo=None)

    return sorted(waiting, key=turn)


def claim_job(sessions: sessionmaker[Session], owner: str, lease: timedelta,
              running_here: Collection[str] = ()) -> str | None:
    """The id of the job whose submitter's turn it is (its oldest claimable one), now running under
    ``owner``; None if none. A job another dispatcher holds locked is skipped, never taken twice, and
    so is one in ``running_here``: the claimant still runs it, though its lease ran out while the
    database was away."""
    with sessions() as session:
        now = utcnow()
        for who in submitters_in_turn(session, now):
            job_id = session.scalars(select(Job.id).where(_claimable(Job, now), _submitter_is(who),
                                                          Job.id.not_in(list(running_here)))
                                     .order_by(Job.created_at).limit(1).with_for_update(skip_locked=True)).first()
            if job_id is not None and _take(session, Job, job_id, owner, lease, now):
                session.commit()
                return job_id
        session.rollback()
    return None


def renew(sessions: sessionmaker[Session], table, row_id: str, owner: str, lease: timedelta) -> bool:
    """Extend the lease; False when the row is no longer running under ``owner``."""
    with sessions() as session:
        owned = session.execute(
            update(table).where(table.id == row_id, table.lease_owner == owner, table.status == "running")
            .values(lease_expires_at=utcnow() + lease)).rowcount == 1
        session.commit()
    return owned
