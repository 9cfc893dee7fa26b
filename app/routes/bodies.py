"""How the API reads request bodies: always as JSON, whatever ``Content-Type`` says.

One rule for every route. The order routes parse their raw body with orjson themselves (for
per-order errors and speed); ``JsonBodyRoute`` gives the routes that take a pydantic body
the same behaviour. FastAPI only parses a body as JSON when the client sent
``Content-Type: application/json``; anything else (``curl -d``'s form type, ``text/plain``,
none at all) reached the model as raw bytes and was refused with a puzzling 422 "Input should
be a valid dictionary". Here the body is parsed with orjson first: a body that is not JSON is
400 ``INVALID_JSON``, exactly as on ``POST /orders``; a JSON body is handed to FastAPI as
JSON, which validates it against the model as usual. The API takes no forms or uploads.

FastAPI's strictness guards cookie-authenticated apps against cross-site "simple" requests
(a form or text/plain POST needs no CORS preflight). Here every route needs ``X-API-Key``, a
custom header that no cross-site request can carry without a preflight, so leniency about
the body's declared type opens nothing. As in FastAPI, the body is parsed before the
dependencies run, so a keyless request with a broken body hears INVALID_JSON, not 401.

Every router whose routes take a body declares ``route_class=JsonBodyRoute``;
``app.routes.require_json_bodies`` refuses to start an app where one does not.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import params
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from app.errors import BadRequest

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _JsonRequest(Request):
    """``request`` with its body already read and parsed, declared as JSON to FastAPI."""

    def __init__(self, request: Request, body: bytes, payload: Any) -> None:
        super().__init__(request.scope, request.receive)
        self._raw_body = body
        self._payload = payload
        raw = [(name, value) for name, value in request.headers.raw if name != b"content-type"]
        self._json_headers = Headers(raw=[*raw, (b"content-type", b"application/json")])

    @property
    def headers(self) -> Headers:
        return self._json_headers

    async def body(self) -> bytes:
        return self._raw_body

    async def json(self) -> Any:
        return self._payload


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("request body is not valid JSON", code="INVALID_JSON") from exc


def reads_json_body(route: APIRoute) -> bool:
    """Whether FastAPI parses a body for ``route`` (a pydantic model, not a form)."""
    field = route.body_field
    return field is not None and not isinstance(field.field_info, params.Form)


class JsonBodyRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if not reads_json_body(self):
            return handler

        async def read_json(request: Request) -> Response:
            body = await request.body()
            if not body:  # FastAPI reports the missing body (422 VALIDATION_ERROR)
                return await handler(request)
            return await handler(_JsonRequest(request, body, parse_json(body)))

        return read_json
