"""Dependencies shared by routes: a database session and the write-access check."""
from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request
from sqlalchemy.orm import Session

from service import settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_writer(authorization: Annotated[str | None, Header()] = None) -> None:
    """Writes need `Authorization: Bearer <SRM_BENCH_API_TOKEN>` when the token is set (constant-time compare)."""
    token = settings.api_token()
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(status_code=401, detail="this endpoint needs the header 'Authorization: Bearer <token>' "
                                                    "with the server's SRM_BENCH_API_TOKEN",
                            headers={"WWW-Authenticate": "Bearer"})


RopeQuery = Annotated[float | None, Query(ge=0, description="region of practical equivalence in top-1 points "
                                                            "(default: the job's rope, else 0.5)")]
EffectQuery = Annotated[float, Query(gt=0, description="the gain in top-1 points to plan for")]
NOT_FOUND_OR_INVALID = {404: {"description": "no such job or study"},
                        422: {"description": "a query parameter out of range (named in the body)"}}
