"""Inserts that honour an Idempotency-Key: a repeated request gets the row its first try made."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import IdempotencyConflict


def insert_once(session: Session, table: Any, kind: str, spec: dict[str, Any], key: str | None,
                make: Callable[[], Sequence[Any]], before_insert: Callable[[], None] | None = None) -> tuple[Any, bool]:
    """Insert the rows ``make()`` returns (the first is the one the key names) in one transaction;
    returns (that row, True). If ``key`` already made a row of ``table``, returns (it, False), or raises
    IdempotencyConflict when this request's spec differs. ``before_insert`` (a quota check) runs only
    when something is about to be inserted, in the same transaction."""
    if key:
        existing = _by_key(session, table, key)
        if existing is not None:
            return _replay(existing, spec, kind), False
    if before_insert is not None:
        before_insert()
    rows = make()
    session.add_all(rows)
    try:
        session.commit()
    except IntegrityError:  # a concurrent retry with the same key won the race
        session.rollback()
        existing = _by_key(session, table, key) if key else None
        if existing is None:
            raise
        return _replay(existing, spec, kind), False
    return rows[0], True


def _by_key(session: Session, table: Any, key: str) -> Any:
    return session.scalars(select(table).where(table.idempotency_key == key)).first()


def _replay(row: Any, spec: dict[str, Any], kind: str) -> Any:
    """The row an Idempotency-Key created, if this request repeats it; a different body is a conflict."""
    if row.spec != spec:
        raise IdempotencyConflict(f"Idempotency-Key was already used for {kind} {row.id} with a different spec; "
                                  f"use a new key for a new {kind}")
    return row
