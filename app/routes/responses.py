"""JSON responses rendered with orjson (fast, and exact for the decimal strings we send), and
the error envelope as OpenAPI declares it."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

# Ids stored as PostgreSQL BIGINT: a larger path integer is a 422, never a database error.
INT64_MAX = 2**63 - 1
Int64Id = Annotated[int, Path(ge=1, le=INT64_MAX)]


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    error.update(extra)
    return {"error": error}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. details, checks

    code: str = Field(description="stable, machine-readable", examples=["UNAUTHENTICATED"])
    message: str


class ErrorEnvelope(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


_ERRORS = {  # status: (description, an example code and message)
    400: (
        "malformed request (e.g. INVALID_JSON)",
        "INVALID_JSON",
        "request body is not valid JSON",
    ),
    401: (
        "missing or unknown X-API-Key (UNAUTHENTICATED)",
        "UNAUTHENTICATED",
        "a valid X-API-Key header is required",
    ),
    403: (
        "the key lacks the route's scope (FORBIDDEN)",
        "FORBIDDEN",
        "this key lacks the scope this route needs",
    ),
    404: ("no such resource, or another account's", "NOT_FOUND", "not found"),
    409: ("conflict with the resource's state", "ORDER_NOT_OPEN", "the order is not open"),
    413: (
        "body over MAX_BODY_BYTES or too many items (PAYLOAD_TOO_LARGE, BATCH_TOO_LARGE)",
        "PAYLOAD_TOO_LARGE",
        "the request body is larger than 1048576 bytes",
    ),
    422: (
        "invalid input (VALIDATION_ERROR or a specific code)",
        "VALIDATION_ERROR",
        "body.quantity: Field required",
    ),
    429: ("rate limited (RATE_LIMITED, with Retry-After)", "RATE_LIMITED", "rate limit exceeded"),
    503: (
        "a dependency is unavailable (JOURNAL_UNAVAILABLE, DATABASE_UNAVAILABLE); retry",
        "DATABASE_UNAVAILABLE",
        "the database is unavailable; retry later",
    ),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring the error envelope for ``statuses``, with an example."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message = _ERRORS[status]
        responses[status] = {
            "model": ErrorEnvelope,
            "description": description,
            "content": {"application/json": {"example": error_body(code, message)}},
        }
    return responses
