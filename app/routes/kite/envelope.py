"""Kite's envelope: ``{"status": "success", "data"}`` and ``{"status": "error", "message",
"error_type", "data": null}``, always with a JSON content type (the official client reads
anything else as a ``DataException`` or a ``KeyError``)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import Send

from app.services.kite.errors import kite_error

JSON = (b"content-type", b"application/json")
CSV = (b"content-type", b"text/csv")


def success(data: Any) -> bytes:
    return orjson.dumps({"status": "success", "data": data})


def error(code: str, message: str, status: int) -> tuple[int, bytes]:
    """Our ``code`` (answered with ``status``) as Kite's status and error body."""
    kite_status, error_type = kite_error(code, status)
    body = {"status": "error", "message": message, "error_type": error_type, "data": None}
    return kite_status, orjson.dumps(body)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: tuple[bytes, bytes] = JSON,
    headers: dict[str, str] | None = None,
) -> None:
    raw = [content_type, (b"content-length", str(len(body)).encode())]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode(), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
