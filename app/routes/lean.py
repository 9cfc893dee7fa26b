"""The order routes' lean path: the five routes that carry orders, served as plain ASGI.

Why this path differs from the rest of the API: an algorithmic client sends one order per
request, and there FastAPI's per-request work (dependency solving, routing, five middleware
wrappers, the instrumentator's ``asyncio.gather``, a ``uuid4`` request id) cost more CPU
than placing the order (issue 17; measured in bench/single.py). Everywhere else the
convention holds; for ``POST /orders``, ``POST /advanced/batch-orders``,
``PATCH``/``DELETE /orders/{order_id}`` and ``DELETE /orders`` the work is paid once:

- ``LeanApp`` (the FastAPI app itself) matches method and path before Starlette's routing
  and calls ``LeanOrderPath``, which does inline what the route's dependencies and the
  middleware do: request id and access log (``app.middleware``), body limit, ``admit`` and
  ``authorise`` of the same ``AuthService``, the same ``OrderEntry`` call as the route,
  orjson rendering, errors through ``app.routes.errors.render_error``, the route metrics
  through ``HttpMetrics`` (same series, ``handler`` the route template).
- Under the server's own protocol (``app.httpprotocol``) its JSON answers go out rendered:
  status, header lines and body in one call (``WholeCycle.answer_whole``), without the two
  ASGI messages and the checks of headers it wrote itself. Its errors, and any other
  server, get the ASGI messages, with the same headers.
- The routes stay declared in ``app.routes.orders``: the OpenAPI document, the auth matrix
  and the start-up check of open routes read them, and they still serve every request the
  lean path does not take whole. A request whose parameters would fail FastAPI's validation
  (an order id that is not a plain positive int64, a long ``Idempotency-Key`` or ``symbol``,
  a ``PATCH`` body that is not a valid amendment) falls through to FastAPI before anything
  is charged to its key, with its body replayed, so its answer is FastAPI's own, byte for
  byte. So does a request with an ``Origin`` header (a browser: CORS) or ``X-Kite-Version``
  (the Kite Connect dialect): neither is an algorithmic client's order path.

Unlike the FastAPI path, a 413 refused from its Content-Length is counted in
``http_requests_total`` here (it is an answer of the route).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import request_id_var
from app.metrics import HttpMetrics
from app.middleware import add_missing_headers, log_access, request_id_for, too_large_body
from app.routes.errors import render_error
from app.routes.responses import INT64_MAX
from app.services.access.auth import AuthService
from app.services.access.auth import Scope as KeyScope
from app.services.orders.entry import OrderEntry
from app.services.orders.parsing import AmendIn
from app.state import AppState

_ORDER_ID = re.compile(r"[1-9][0-9]{0,18}")
_IDEMPOTENCY_KEY_MAX = 128  # as app.routes.orders declares them
_SYMBOL_MAX = 64
_JSON = (b"content-type", b"application/json")


class _FallThrough(Exception):
    """The request needs FastAPI's own validation (and error messages)."""


@dataclass(frozen=True, slots=True)
class _Request:
    """What the lean path reads of one request, from one pass over its headers."""

    api_key: str | None
    request_id: str | None
    content_length: str | None
    idempotency_key: str | None
    # ``Origin`` (CORS headers to add) or ``X-Kite-Version`` (the Kite Connect dialect):
    # FastAPI's stack answers those.
    other_protocol: bool


def _read_headers(scope: Scope) -> _Request:
    api_key = request_id = length = idempotency = None
    other_protocol = False
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            api_key = api_key if api_key is not None else value.decode("latin-1")
        elif name == b"content-length":
            length = length if length is not None else value.decode("latin-1")
        elif name == b"x-request-id":
            request_id = request_id if request_id is not None else value.decode("latin-1")
        elif name == b"idempotency-key":
            idempotency = idempotency if idempotency is not None else value.decode("latin-1")
        elif name == b"origin" or name == b"x-kite-version":
            other_protocol = True
    return _Request(api_key, request_id, length, idempotency, other_protocol)


class LeanOrderPath:
    def __init__(
        self,
        *,
        fallback: ASGIApp,
        metrics: HttpMetrics,
        max_body_bytes: int,
        access_log: bool,
    ) -> None:
        self._fallback = fallback
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._access_log = access_log

    @property
    def max_body_bytes(self) -> int:
        return self._max_body

    @staticmethod
    def template(method: str, path: str) -> str | None:
        """The route template this path serves for ``method`` and ``path``, or None."""
        if path == "/orders":
            return path if method in ("POST", "DELETE") else None
        if path == "/advanced/batch-orders":
            return path if method == "POST" else None
        if path.startswith("/orders/") and method in ("PATCH", "DELETE"):
            order_id = path[8:]
            if _ORDER_ID.fullmatch(order_id) and int(order_id) <= INT64_MAX:
                return "/orders/{order_id}"
        return None

    async def __call__(self, template: str, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        request = _read_headers(scope)
        if request.other_protocol or (
            request.idempotency_key is not None
            and len(request.idempotency_key) > _IDEMPOTENCY_KEY_MAX
        ):
            await self._fallback(scope, receive, send)
            return
        symbol: str | None = None
        if method == "DELETE" and template == "/orders" and scope["query_string"]:
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"), True))
            symbol = query.get("symbol")
            if symbol is not None and len(symbol) > _SYMBOL_MAX:
                await self._fallback(scope, receive, send)
                return
        request_id = request_id_for(request.request_id)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        extra: dict[str, str] = {}
        status, body = 0, b""
        headers: list[tuple[bytes, bytes]] = []
        unexpected: Exception | None = None
        plain = True  # a JSON answer of ours: content-length and content-type its headers
        try:
            status, body, headers = await self._answer(
                template, scope, receive, request, symbol, extra
            )
        except _FallThrough as fall:
            request_id_var.reset(token)
            await self._fallback(scope, _replay(fall.args[0], receive), send)
            return
        except _TooLarge:
            status, body, headers = self._too_large()
        except Exception as exc:  # rendered as the FastAPI path renders it
            plain = False
            response, was_unexpected = await render_error(Request(scope), exc)
            status, body, headers = response.status_code, bytes(response.body), response.raw_headers
            if was_unexpected:
                unexpected = exc
        try:
            if status:
                whole = _whole_answer(send) if plain else None
                if whole is None or not whole(status, _head(body, request_id, extra), body):
                    headers.append((b"x-request-id", request_id.encode()))
                    add_missing_headers(headers, extra)
                    await send(
                        {"type": "http.response.start", "status": status, "headers": headers}
                    )
                    await send({"type": "http.response.body", "body": body})
                self._metrics.observe(
                    method,
                    str(status),
                    template,
                    request_bytes=_int(request.content_length),
                    response_bytes=len(body),
                    seconds=time.perf_counter() - started,
                )
            if self._access_log:
                log_access(scope, status, started)
        finally:
            request_id_var.reset(token)
        if unexpected is not None:
            raise unexpected  # as Starlette's ServerErrorMiddleware does, after the 500

    async def _answer(
        self,
        template: str,
        scope: Scope,
        receive: Receive,
        request: _Request,
        symbol: str | None,
        extra: dict[str, str],
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, body and headers of the answer (a disconnected client gets status 0)."""
        length = request.content_length
        if length is not None and (not length.isdigit() or int(length) > self._max_body):
            return self._too_large()
        state: AppState = scope["state"]
        method: str = scope["method"]
        amend: AmendIn | None = None
        if method == "PATCH":  # FastAPI reads and validates a model body before the key
            body = await self._body(receive)
            if body is None:
                return 0, b"", []
            amend = _amendment(body)
        auth: AuthService = state["auth"]
        client = scope.get("client")
        admission = auth.admit(request.api_key, address=client[0] if client else None)
        extra.update(admission.headers)
        account = auth.authorise(admission.key, KeyScope.TRADE).account
        orders: OrderEntry = state["orders"]
        result: dict[str, Any]
        status = 200
        if amend is not None:
            order_id = int(scope["path"][8:])
            result = await orders.amend_order(
                account, order_id, quantity=amend.quantity, price=amend.price
            )
        elif method == "DELETE":
            if template == "/orders":
                result = await orders.cancel_all(account, symbol)
            else:
                result = await orders.cancel_order(account, int(scope["path"][8:]))
        else:
            body = await self._body(receive)
            if body is None:
                return 0, b"", []
            if template == "/orders":
                result = await orders.place_order(account, body)
                # A result stored before ``created`` existed (a matcher's replay) was placed.
                status = 201 if result.get("created", True) else 200
            else:
                result = await orders.place_batch(
                    account, body, idempotency_key=request.idempotency_key
                )
        rendered = orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
        return status, rendered, [(b"content-length", str(len(rendered)).encode()), _JSON]

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body; None when the client left, ``_TooLarge`` over the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise _TooLarge()
            if not message.get("more_body", False):
                if not chunks:
                    return chunk
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)

    def _too_large(self) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        body = too_large_body(self._max_body)
        return 413, body, [_JSON, (b"content-length", str(len(body)).encode())]


class _TooLarge(Exception):
    pass


def _amendment(body: bytes) -> AmendIn:
    """The ``PATCH`` body as FastAPI would take it; anything else falls through to FastAPI."""
    try:
        payload = orjson.loads(body)
        if isinstance(payload, dict):
            return AmendIn.model_validate(payload)
    except (orjson.JSONDecodeError, ValidationError):
        pass
    raise _FallThrough(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for a request whose body was read already."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _whole_answer(send: Send) -> Callable[[int, bytes, bytes], bool] | None:
    """The server's ``answer_whole`` where ``send`` is a ``WholeCycle``'s
    (``app.httpprotocol``): the answer in one call, its head rendered here."""
    return getattr(getattr(send, "__self__", None), "answer_whole", None)


def _head(body: bytes, request_id: str, extra: dict[str, str]) -> bytes:
    """The header lines of a JSON answer of ours (``_answer``'s, ``_too_large``'s), as the
    ASGI path sends them: its two, the request id, then ``extra`` (none of those three).
    Nothing here needs uvicorn's checks of header values: the request id is a token
    (``request_id_for``), ``extra`` the rate-limit fields (policy names and integers)."""
    lines = b"content-length: %d\r\ncontent-type: application/json\r\nx-request-id: %s\r\n" % (
        len(body),
        request_id.encode(),
    )
    if extra:
        lines += "".join([f"{name.lower()}: {value}\r\n" for name, value in extra.items()]).encode(
            "latin-1"
        )
    return lines


def _int(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() else 0


class LeanApp(FastAPI):
    """The FastAPI app, with the order routes' lean path in front of its middleware stack."""

    lean_path: LeanOrderPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lean = self.lean_path
        if lean is not None and scope["type"] == "http" and not scope.get("root_path"):
            template = lean.template(scope["method"], scope["path"])
            if template is not None:
                await lean(template, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def buffered_route(self, method: str, path: str) -> bool:
        """For the server (``app.httpprotocol``): whether this app takes a request whole,
        its body read before it runs (a ``Content-Length`` within ``buffered_body_limit``):
        the lean path's routes, which read the whole body before anything else anyway."""
        lean = self.lean_path
        return lean is not None and lean.template(method, path) is not None

    @property
    def buffered_body_limit(self) -> int:
        return 0 if self.lean_path is None else self.lean_path.max_body_bytes

    def enable_lean_path(self, **options: Any) -> None:
        async def fastapi_app(scope: Scope, receive: Receive, send: Send) -> None:
            await FastAPI.__call__(self, scope, receive, send)

        self.lean_path = LeanOrderPath(fallback=fastapi_app, **options)
