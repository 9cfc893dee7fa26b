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


_ERROR_DESCRIPTIONS = {
    400: "malformed request (e.g. INVALID_JSON)",
    401: "missing or unknown X-API-Key (UNAUTHENTICATED)",
    403: "the key lacks the route's scope (FORBIDDEN)",
    404: "no such resource, or another account's",
    409: "conflict with the resource's state",
    413: "body over MAX_BODY_BYTES or too many items (PAYLOAD_TOO_LARGE, BATCH_TOO_LARGE)",
    422: "invalid input (VALIDATION_ERROR or a specific code)",
    429: "rate limited (RATE_LIMITED, with Retry-After)",
    503: "a dependency is unavailable (JOURNAL_UNAVAILABLE, DATABASE_UNAVAILABLE); retry",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring the error envelope for ``statuses``."""
    return {
        status: {"model": ErrorEnvelope, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
