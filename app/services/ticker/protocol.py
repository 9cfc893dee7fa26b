"""The WebSocket message protocol: client requests in, server messages out (JSON text).

A malformed request never closes the connection: it gets ``{"type": "error", "code", ...}``
(with the request's ``id`` echoed when it had one) and the connection carries on. Requests
are checked completely before anything changes, so a refused request changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.errors import AppError
from app.services.instruments.model import Instrument
from app.services.instruments.snapshot import RegistrySnapshot
from app.services.ticker.ticks import Mode

MAX_MESSAGE_BYTES = 256 * 1024

# Close codes (RFC 6455 section 7.4.1).
NORMAL = 1000
POLICY = 1008  # authentication failed or timed out, limits, idle
INTERNAL = 1011
TRY_AGAIN = 1013  # a client that stayed behind (slow consumer)

TICKS_HEAD = b'{"type":"ticks","ticks":['
TICKS_TAIL = b"]}"


class ClientError(Exception):
    """A request the server refuses; rendered as an error message, the connection stays."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    body: dict[str, Any]

    @property
    def id(self) -> Any:
        return self.body.get("id")


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def error(code: str, message: str, request_id: Any = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        body["id"] = request_id
    return orjson.dumps(body)


def heartbeat() -> bytes:
    return orjson.dumps({"type": "heartbeat", "time": datetime.now(UTC).isoformat()})


def parse(raw: str | bytes) -> Request:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ClientError("MESSAGE_TOO_LARGE", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ClientError("INVALID_JSON", "the message is not valid JSON") from None
    if not isinstance(body, dict):
        raise ClientError("INVALID_MESSAGE", "a message must be a JSON object")
    action = body.get("action")
    if not isinstance(action, str):
        raise ClientError("INVALID_MESSAGE", 'a message needs an "action" string')
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str | int):
        raise ClientError("INVALID_MESSAGE", '"id" must be a string or an integer')
    return Request(action, body)


def mode_of(request: Request, default: Mode | None) -> Mode:
    value = request.body.get("mode")
    if value is None:
        if default is None:
            raise ClientError("INVALID_MODE", 'give "mode": one of ltp, quote, full')
        return default
    try:
        return Mode(value)
    except ValueError:
        raise ClientError(
            "INVALID_MODE", f"unknown mode {str(value)[:20]!r}; use ltp, quote or full"
        ) from None


def instruments(request: Request, snapshot: RegistrySnapshot, limit: int) -> list[Instrument]:
    """The request's instruments (``symbols``: symbols or instrument tokens; ``tokens``: tokens),
    resolved against the registry, de-duplicated in request order."""
    given: list[Any] = []
    for field in ("symbols", "tokens"):
        value = request.body.get(field)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ClientError("INVALID_SYMBOLS", f'"{field}" must be a list')
        given.extend(value)
    if not given:
        raise ClientError("INVALID_SYMBOLS", 'give "symbols": a non-empty list')
    if len(given) > limit:
        raise ClientError("TOO_MANY_INSTRUMENTS", f"at most {limit} instruments per connection")
    found: dict[int, Instrument] = {}
    for item in given:
        instrument = _resolve(item, snapshot)
        found.setdefault(instrument.instrument_token, instrument)
    return list(found.values())


def _resolve(item: Any, snapshot: RegistrySnapshot) -> Instrument:
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise ClientError("INVALID_SYMBOLS", "symbols are strings or instrument tokens")
    try:
        if isinstance(item, int):
            return snapshot.instrument(item)
        if len(item) > 64:
            raise ClientError("INVALID_SYMBOLS", "symbol too long")
        return snapshot.lookup(item)
    except AppError as exc:
        raise ClientError(exc.code, f"{str(item)[:64]}: {exc.message}") from None


def listed(instruments: list[Instrument]) -> list[dict[str, Any]]:
    return [{"symbol": i.symbol, "instrument_token": i.instrument_token} for i in instruments]


def flag(request: Request, name: str) -> bool:
    value = request.body.get(name, False)
    if not isinstance(value, bool):
        raise ClientError("INVALID_MESSAGE", f'"{name}" must be true or false')
    return value
