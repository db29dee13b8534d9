"""The API's error contract: one error body, the statuses each route documents, and Allow on 405.

Every status a route can answer is in /openapi.json with this body (schemathesis checks it):
routers add 401/422/503 for every /v1 route (reads may need a token, every route takes a header,
any route may find the database away), routes add what is theirs (400, 403, 404, 409, 429).
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class FieldError(BaseModel):
    """One invalid field: where (["body", "variants", 0, "kind"]), what is wrong and its kind."""

    model_config = ConfigDict(extra="allow")  # FastAPI adds the input and the rule's context
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error: a sentence saying what is wrong and what is valid, or the invalid fields."""

    detail: str | list[FieldError]


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                               "schema": {"type": "integer", "minimum": 0}}}
DESCRIPTIONS = {
    400: "the body is not valid JSON",
    401: "a token is needed (writes; reads too with SRM_BENCH_READ_TOKEN_REQUIRED=1) or the one sent is unknown "
         "or revoked",
    403: "the token is valid but may not do this; the body says who may",
    404: "no such resource; the body names what was looked for",
    409: "the resource is not in a state that allows this; the body says why",
    422: "a field or query parameter that is not valid, named in the body with the reason",
    429: "too many queued jobs for this user; retry after Retry-After seconds",
    503: "a service this route needs (the database) is unreachable; retry after Retry-After seconds",
}
HEADERS = {401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
           429: RETRY_AFTER, 503: RETRY_AFTER}


def errors(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses; `descriptions` (as s404="...") replace the default text."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody,
                                 "description": descriptions.get(f"s{status}", DESCRIPTIONS[status])}
        if status in HEADERS:
            entry["headers"] = HEADERS[status]
        documented[status] = entry
    return documented


METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """Every method some route of this path answers (Starlette's own 405 names only the first route's),
    found by asking the routes themselves, included routers too."""
    return [method for method in METHODS
            if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in app.router.routes)]


ERROR_REF = "#/components/schemas/ErrorBody"


def _is_error_body(response: dict[str, Any]) -> bool:
    return any(media.get("schema", {}).get("$ref") == ERROR_REF for media in response.get("content", {}).values())


def _one_error_body(app: FastAPI) -> None:
    """Every error in the document is JSON, also on routes whose success is HTML or PNG (FastAPI
    would document their errors under the route's media type)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for operations in document["paths"].values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        if _is_error_body(response):
                            response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi


def install(app: FastAPI) -> None:
    _one_error_body(app)
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        headers = dict(err.headers or {})
        if err.status_code == 405:
            allowed = allowed_methods(app, request.scope)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
        else:
            detail = err.detail
        return JSONResponse(status_code=err.status_code, content={"detail": detail}, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        issues = list(err.errors())
        if any(issue.get("type") == "json_invalid" for issue in issues):
            return JSONResponse(status_code=400, content={"detail": "the body is not valid JSON: "
                                                          + "; ".join(str(i.get("msg")) for i in issues)})
        return JSONResponse(status_code=422, content={"detail": _plain(issues)})


def _plain(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation issues as JSON: pydantic puts exception objects and bytes in `ctx`/`input`."""
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(issues, custom_encoder={Exception: str, bytes: lambda b: b.decode("utf-8", "replace")})
