"""The one place errors become HTTP: every failure renders ``{"error": {"code", "message"}}``.

Covers our ``AppError`` tree, FastAPI's own 404/405/422, values the database refuses (a 422:
they came from the request), a database that does not answer (503) and anything unexpected
(a 500 with no internals; the traceback goes to the log with the request id).
``render_error`` is the same mapping for the order routes' lean path, which FastAPI's
exception handling never sees.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AppError
from app.routes.responses import OrjsonResponse, error_body

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


async def _app_error(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, AppError)
    extra: dict[str, Any] = {"details": exc.details} if exc.details is not None else {}
    return OrjsonResponse(
        error_body(exc.code, exc.message, **extra), status_code=exc.status, headers=exc.headers
    )


async def _http_error(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.lower().replace("_", " ")
    return OrjsonResponse(
        error_body(code, message), status_code=exc.status_code, headers=exc.headers
    )


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    location = ".".join(str(part) for part in error.get("loc", ()))
    return {"field": location, "message": error.get("msg", "invalid"), "type": error.get("type")}


async def _validation_error(_request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_describe(error) for error in exc.errors()]
    first = problems[0] if problems else {"field": "", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return OrjsonResponse(
        error_body("VALIDATION_ERROR", message, details=problems[:20]), status_code=422
    )


async def _data_error(request: Request, exc: Exception) -> OrjsonResponse:
    """A value the database refuses (a NUL character in text, an integer past BIGINT): input
    that a route let through. Still the client's input, so a 422, and logged to be fixed
    (class and SQLSTATE only: the database's message may quote the value)."""
    assert isinstance(exc, DataError)
    log.warning(
        "database refused a value of %s %s (%s, sqlstate %s); validate it at the route",
        request.method,
        request.url.path,
        type(exc.orig).__name__,
        getattr(exc.orig, "sqlstate", None),
    )
    message = "a value in the request cannot be stored (e.g. a NUL character, a number too large)"
    return OrjsonResponse(error_body("VALIDATION_ERROR", message), status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> OrjsonResponse:
    """The database does not answer (connection lost or refused, pool exhausted): a read
    cannot be served now, which is a 503 the client may retry, not an internal error."""
    log.warning(
        "database unavailable for %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return OrjsonResponse(
        error_body("DATABASE_UNAVAILABLE", "the database is unavailable; retry later"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, exc: Exception) -> OrjsonResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return OrjsonResponse(error_body("INTERNAL_ERROR", "internal error"), status_code=500)


Handler = Callable[[Request, Exception], Awaitable[OrjsonResponse]]

_HANDLERS: tuple[tuple[type[Exception], Handler], ...] = (
    (AppError, _app_error),
    (StarletteHTTPException, _http_error),
    (RequestValidationError, _validation_error),
    (DataError, _data_error),
    (OperationalError, _database_unavailable),
    (InterfaceError, _database_unavailable),
    (PoolTimeout, _database_unavailable),
)


def install_error_handlers(app: FastAPI) -> None:
    for error, handler in _HANDLERS:
        app.add_exception_handler(error, handler)
    app.add_exception_handler(Exception, _unexpected)


async def render_error(request: Request, exc: Exception) -> tuple[OrjsonResponse, bool]:
    """The response for ``exc``, as the handlers above render it, and whether it was
    unexpected (a 500, which the server should also see raised)."""
    for error, handler in _HANDLERS:
        if isinstance(exc, error):
            return await handler(request, exc), False
    return await _unexpected(request, exc), True
