"""Exception handlers: every error is a JSON body that says what went wrong, never a traceback."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from service.db import is_unavailable
from service.errors import (
    AnalysisNotFound,
    Forbidden,
    IdempotencyConflict,
    JobNotFound,
    NotReady,
    QuotaExceeded,
    SpecError,
    StudyNotFound,
)

log = logging.getLogger("srm_bench.api")
RETRY_AFTER_S = 5  # a database restart or failover usually takes seconds


def spec_error_body(err: SpecError) -> dict:
    """Same shape as FastAPI's own validation errors, so clients parse one format."""
    loc = ["body", *(int(p) if p.isdigit() else p for p in err.field.split(".") if p)]
    return {"detail": [{"loc": loc, "msg": err.message, "type": "value_error"}]}


def install(app: FastAPI) -> None:
    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, err: SpecError) -> JSONResponse:
        return JSONResponse(status_code=422, content=spec_error_body(err))

    @app.exception_handler(JobNotFound)
    @app.exception_handler(StudyNotFound)
    @app.exception_handler(AnalysisNotFound)
    async def _not_found(_: Request, err: LookupError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(err)})

    @app.exception_handler(NotReady)
    async def _not_ready(_: Request, err: NotReady) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(err)})

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, err: IdempotencyConflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(err)})

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, err: Forbidden) -> JSONResponse:
        return JSONResponse(status_code=403, content={"detail": str(err)})

    @app.exception_handler(QuotaExceeded)
    async def _quota(_: Request, err: QuotaExceeded) -> JSONResponse:
        return JSONResponse(status_code=429, content={"detail": str(err)},
                            headers={"Retry-After": str(err.retry_after_s)})

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, err: DataError) -> JSONResponse:
        # e.g. PostgreSQL text cannot hold NUL (0x00), or a name longer than its column: the client's value
        reason = str(err.orig).splitlines()[0] if err.orig is not None else "rejected"
        return JSONResponse(status_code=422, content={
            "detail": f"a value in this request cannot be stored or compared by the database: {reason}"})

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_error(request: Request, err: Exception) -> JSONResponse:
        if not is_unavailable(err):
            return await _unexpected(request, err)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(err).splitlines()[0])
        return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}, content={
            "detail": f"the database is unavailable ({type(err.__cause__ or err).__name__}); "
                      f"nothing was lost, retry in {RETRY_AFTER_S} s"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={
            "detail": f"internal error ({type(err).__name__}); the server log has the details"})
