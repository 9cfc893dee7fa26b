"""The Kite Connect dialect on the same port (DESIGN.md "Kite Connect compatibility").

``KiteDispatch`` sits in the middleware stack inside the request-id and access-log
middleware: a request carrying ``X-Kite-Version`` (the official client sends it on every
call and on the WebSocket upgrade), and any WebSocket to ``/kite/ws``, goes to the Kite
API (``app``: HTTP, ``ws``: KiteTicker); everything else goes on to our API unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.routes.kite.app import KiteApp
from app.routes.kite.handlers import ROUTES
from app.routes.kite.ws import PATH, kite_ticker


def is_kite(scope: Scope) -> bool:
    if scope["type"] == "websocket" and scope["path"] == PATH:
        return True
    return any(name == b"x-kite-version" for name, _value in scope.get("headers", ()))


class KiteDispatch:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.kite = KiteApp(ROUTES, max_body_bytes=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and is_kite(scope):
            await self.kite(scope, receive, send)
        elif kind == "websocket" and is_kite(scope):
            await kite_ticker(scope, receive, send)
        else:
            await self.app(scope, receive, send)
