"""Dependencies shared by routes: a database session, and who the caller is (users.Caller) for reads and writes."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request
from sqlalchemy.orm import Session

from service import settings, users
from service.users import Caller


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                         detail=f"{why}: send the header 'Authorization: Bearer <token>' with a token from "
                                "`srm-bench user add NAME` or the server's SRM_BENCH_API_TOKEN")


def _caller(session: Session, authorization: str | None) -> Caller | None:
    """The caller the Authorization header names; None without one; 401 for a wrong or revoked token."""
    if not authorization:
        return None
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _unauthorized("the Authorization header is not a bearer token")
    caller = users.caller_for(session, given.strip(), settings.api_token())
    if caller is None:
        raise _unauthorized("this token is unknown or revoked")
    return caller


def require_writer(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Who writes: a token's user. Without SRM_BENCH_API_TOKEN writes are open, and a request without
    a token is an anonymous admin (a one-person service)."""
    caller = _caller(session, authorization)
    if caller is not None:
        return caller
    if settings.api_token() is None:
        return Caller(None, True)
    raise _unauthorized("this endpoint needs a token")


def require_reader(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Reads are open unless SRM_BENCH_READ_TOKEN_REQUIRED=1; then any valid token may read."""
    if settings.current().read_token_required and _caller(session, authorization) is None:
        raise _unauthorized("this server requires a token for reads (SRM_BENCH_READ_TOKEN_REQUIRED=1)")


WriterDep = Annotated[Caller, Depends(require_writer)]


MAX_OFFSET = 1_000_000_000  # list offsets: far past any real history, far inside SQL's 64-bit integers
RopeQuery = Annotated[float | None, Query(ge=0, le=100, description="region of practical equivalence in top-1 points "
                                                            "(default: the job's rope, else 0.5)")]
EffectQuery = Annotated[float, Query(gt=0, le=100, description="the gain in top-1 points to plan for")]
