"""The Kite-compatible HTTP API: a plain ASGI app with its own small routing table.

It is the edge for Kite Connect clients (``KiteDispatch`` sends it every request carrying
``X-Kite-Version``): it authenticates ``Authorization: token <api_key>:<access_token>``
with the same ``AuthService`` (keys, scopes, rate limits) as our API, reads Kite's form
bodies, calls one service per route (``handlers``) and answers in Kite's envelope, errors
included: unknown routes (404), wrong methods (405), bodies over the limit (413), rate
limits (429) and whatever a service raises, mapped by ``app.services.kite.errors``.
Not FastAPI: its validation errors, 404/405 and OpenAPI document are our API's shapes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app.errors import AppError, Forbidden, MethodNotAllowed, NotFound, PayloadTooLarge
from app.routes.errors import render_error
from app.routes.kite.envelope import CSV, error, respond, success
from app.services.access.auth import ApiKey
from app.services.access.auth import Scope as KeyScope
from app.services.kite.service import KiteServices
from app.state import AppState

log = logging.getLogger(__name__)


class TokenMismatch(Forbidden):
    code = "TOKEN_MISMATCH"
    message = "the api_key is not the account of this access_token"


@dataclass(slots=True)
class Csv:
    """A CSV body (the instruments dump) instead of the JSON envelope."""

    body: bytes


@dataclass(slots=True)
class KiteCall:
    state: AppState
    kite: KiteServices
    key: ApiKey | None
    params: dict[str, str]
    query: list[tuple[str, str]]
    form: dict[str, str]
    address: str | None
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def account(self) -> str:
        assert self.key is not None
        return self.key.account

    def arg(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)

    def args(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


Handler = Callable[[KiteCall], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class KiteRoute:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    scope: KeyScope | None  # None: open (the session exchange authenticates by its body)


def route(method: str, template: str, handler: Handler, scope: KeyScope | None) -> KiteRoute:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return KiteRoute(method, re.compile(f"^{regex}$"), handler, scope)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def credentials(scope: Scope) -> tuple[str, str] | None:
    """``(api_key, access_token)`` of ``Authorization: token <api_key>:<access_token>``."""
    value = _header(scope, b"authorization")
    if not value or not value.startswith("token "):
        return None
    api_key, sep, access_token = value[6:].partition(":")
    return (api_key, access_token) if sep and api_key and access_token else None


class KiteApp:
    def __init__(self, routes: list[KiteRoute], *, max_body_bytes: int) -> None:
        self._routes = routes
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra: dict[str, str] = {}
        try:
            result, extra = await self._serve(scope, receive)
        except Exception as exc:
            await self._fail(scope, receive, send, exc, extra)
            return
        if isinstance(result, Csv):
            await respond(send, 200, result.body, content_type=CSV, headers=extra)
        else:
            await respond(send, 200, success(result), headers=extra)

    async def _fail(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception, extra: dict[str, str]
    ) -> None:
        # Our error rendering decides code, message and status (and logs the unexpected);
        # only the envelope is Kite's.
        response, unexpected = await render_error(Request(scope, receive), exc)
        body = orjson.loads(bytes(response.body))["error"]
        status, payload = error(body["code"], body["message"], response.status_code)
        headers = {**extra, **(exc.headers if isinstance(exc, AppError) else {})}
        await respond(send, status, payload, headers=headers)
        if unexpected:
            log.error("unexpected error on the Kite API", exc_info=exc)

    def _match(self, method: str, path: str) -> tuple[KiteRoute, dict[str, str]]:
        allowed = False
        for candidate in self._routes:
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if candidate.method == method:
                return candidate, found.groupdict()
            allowed = True
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed on {path[:100]}")
        raise NotFound(f"route not found: {method} {path[:100]}")

    async def _serve(self, scope: Scope, receive: Receive) -> tuple[Any, dict[str, str]]:
        state: AppState = scope["state"]
        chosen, params = self._match(scope["method"], scope["path"])
        address = scope["client"][0] if scope.get("client") else None
        extra: dict[str, str] = {}
        key = None
        if chosen.scope is not None:
            key = self._authenticate(state, scope, address, extra)
            state["auth"].authorise(key, chosen.scope)
        body = await self._body(receive)
        form = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True)) if body else {}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        call = KiteCall(state, state["kite"], key, params, query, form, address, extra)
        return await chosen.handler(call), extra

    @staticmethod
    def _authenticate(
        state: AppState, scope: Scope, address: str | None, extra: dict[str, str]
    ) -> ApiKey:
        found = credentials(scope)
        admission = state["auth"].admit(found[1] if found else None, address=address)
        extra.update(admission.headers)
        assert found is not None  # admit refuses a missing token
        if found[0] != admission.key.account:
            raise TokenMismatch()
        return admission.key

    async def _body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLarge(f"the request body is larger than {self._max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)
