"""Pure-ASGI middleware: request id in and out, and one access-log line per request.

Dependencies may add response headers (e.g. the RateLimit fields) by filling the dict at
``scope[RESPONSE_HEADERS]``; they are added to whatever response goes out, including
``Response`` objects returned by routes and error responses, unless the response already
sets the same header.

Pure ASGI (not ``BaseHTTPMiddleware``) so it adds no task per request and works for
WebSockets too. The order routes' lean path (``app.routes.lean``) uses the same request ids,
access-log line and 413 body through the functions below.

A generated request id is this process's random 64-bit prefix and a 64-bit counter, as 32
hex digits (the format ``uuid4().hex`` had): well under a microsecond, where ``uuid4`` reads
the OS's random source on every request. The prefix is drawn again after a fork, so ids stay
unique across processes and restarts (two processes share a prefix with odds of 2^-64).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id_var

access_log = logging.getLogger("ticker.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_QUIET_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
RESPONSE_HEADERS = "ticker.response_headers"

_id_prefix = secrets.token_hex(8)
_id_counter = itertools.count()


def _new_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix = secrets.token_hex(8)
    _id_counter = itertools.count()


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """32 lowercase hex digits, unique across processes (see the module header)."""
    return f"{_id_prefix}{next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def request_id_for(incoming: str | None) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a new id."""
    return incoming if incoming and _VALID_ID.fullmatch(incoming) else new_request_id()


def log_access(scope: Scope, status: int, started: float) -> None:
    """The access-log line of one HTTP request (DEBUG for probes and scrapes)."""
    path = scope.get("path", "")
    level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
    access_log.log(
        level,
        "%s %s %s",
        scope.get("method"),
        path,
        status,
        extra={
            "method": scope.get("method"),
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "client": (scope.get("client") or ("-",))[0],
        },
    )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, access_log_enabled: bool = True) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(_header(scope, b"x-request-id"))
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0
        extra_headers: dict[str, str] = {}
        scope[RESPONSE_HEADERS] = extra_headers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                add_missing_headers(headers, extra_headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            # A WebSocket's messages carry no headers to add: its sends (one per tick frame)
            # skip the wrapper.
            wrapped = send_with_id if scope["type"] == "http" else send
            await self.app(scope, receive, wrapped)
        finally:
            if self.access_log_enabled and scope["type"] == "http":
                log_access(scope, status, started)
            request_id_var.reset(token)


def add_missing_headers(headers: list[tuple[bytes, bytes]], extra: dict[str, str]) -> None:
    """Append ``extra`` to raw response ``headers``, except names the response already sets."""
    if extra:
        present = {name.lower() for name, _ in headers}
        headers.extend(
            (name.lower().encode(), value.encode("latin-1"))
            for name, value in extra.items()
            if name.lower().encode() not in present
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 ``PAYLOAD_TOO_LARGE`` for a request body over ``max_bytes``: refused from its
    Content-Length before it is read, or cut off while streaming when it has none."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = too_large_body(self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def too_large_body(max_bytes: int) -> bytes:
    """The 413 ``PAYLOAD_TOO_LARGE`` envelope for a body over ``max_bytes``."""
    return (
        b'{"error":{"code":"PAYLOAD_TOO_LARGE","message":"the request body is larger than '
        + str(max_bytes).encode()
        + b' bytes"}}'
    )
