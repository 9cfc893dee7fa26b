"""The messages between gateways and matchers, on Redis Streams.

Commands go to ``{prefix}orders:{shard}`` (one stream per shard, read by the shard's matcher
through the consumer group ``matchers``); replies go to the asking gateway's own stream
``{prefix}replies:{gateway_id}``. Each entry has one field ``c``: an orjson document. A
command has an ``id`` (unique; it is also the idempotency key of what it places, so a
replayed command places nothing twice), a ``kind``, the ``account`` and ``reply_to``.
A reply has the command's ``id`` and either ``result`` or ``error`` (code, message, status).
"""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import AppError

GROUP = "matchers"
FIELD = b"c"
REPLY_MAXLEN = 100_000
COMMAND_PREFIX = "cmd:"


def encode(document: dict[str, Any]) -> dict[Any, Any]:
    return {"c": orjson.dumps(document)}


def decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(fields[FIELD])
    return document


def error_reply(command_id: str, exc: AppError) -> dict[str, Any]:
    return {
        "id": command_id,
        "error": {
            "code": exc.code,
            "message": exc.message,
            "status": exc.status,
            "details": exc.details,
        },
    }


class RemoteError(AppError):
    """An error a matcher answered with, raised again at the gateway with its status."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"), code=error.get("code"), details=error.get("details"))
        self.status = int(error.get("status") or 500)
