"""HTTP and WebSocket edges. Routes parse, authorise, call one service and render.

``OPEN_PATHS`` is the one list of routes reachable without an API key. Every other router is
included on ``api_router``, which depends on ``current_key``: a route that forgets its scope
alias (``ReadKey``, ``TradeKey``, ``AdminKey``) still needs a valid key. ``include_routers``
refuses to build an app with an HTTP route outside ``OPEN_PATHS`` that does not require a
key. WebSocket routes authenticate themselves (header or first message, through
``AuthService.admit``), so the check skips them.

The console (``/console``, its files under ``/console/``, ``/favicon.ico``) is open too: static
files that hold no data; the page calls the API with the key the user types.

The API docs (``/docs``, ``/redoc``, their assets, ``/openapi.json``) are open: they describe
the public contract and hold no data, and a desk expects to browse them; their "Authorize"
button takes the key for trying routes out.

The Kite Connect dialect (``app.routes.kite``) is not on these routers: ``KiteDispatch``
takes its requests in the middleware stack, and its own routing table authenticates every
route but ``POST /session/token`` (which authenticates the key in its body).

Every route reads its body as JSON whatever ``Content-Type`` says (``app.routes.bodies``);
``require_json_bodies`` refuses an app with a body route that would not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from app.deps import current_key
from app.routes import (
    account,
    admin,
    candles,
    console,
    docs,
    health,
    instruments,
    market,
    orders,
    positions,
    subscriptions,
    webhooks,
    ws,
)
from app.routes.bodies import JsonBodyRoute, reads_json_body
from app.routes.responses import error_responses

OPEN_PATHS = frozenset(
    {
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        docs.DOCS_URL,
        docs.OAUTH2_REDIRECT_URL,
        docs.ASSET_PATH,
        docs.REDOC_URL,
        "/openapi.json",
        *console.PATHS,
    }
)


def authenticated_router() -> APIRouter:
    """A router whose every route requires a valid key (and is rate-limited)."""
    return APIRouter(
        dependencies=[Depends(current_key)], responses=error_responses(401, 403, 422, 429, 503)
    )


def include_routers(app: FastAPI, *, health_only: bool = False) -> None:
    """All routes; ``health_only`` for a matcher, which clients never call directly."""
    app.include_router(health.router)  # open: its paths are in OPEN_PATHS
    app.include_router(docs.router)  # open: its paths are in OPEN_PATHS
    if health_only:
        return
    app.include_router(console.router)  # open: static files only; its paths are in OPEN_PATHS

    # Every other router goes on api_router, before api_router is included below (older
    # FastAPI versions copy routes at include time): api_router.include_router(x.router)
    api_router = authenticated_router()
    api_router.include_router(account.router)
    api_router.include_router(instruments.router)
    api_router.include_router(orders.router)
    api_router.include_router(market.router)
    api_router.include_router(admin.router)
    # Errors these routers answer besides the common ones (OpenAPI only).
    api_router.include_router(webhooks.router, responses=error_responses(400, 404, 409, 413))
    api_router.include_router(subscriptions.router, responses=error_responses(400, 404, 413))
    api_router.include_router(candles.router)
    api_router.include_router(positions.router)
    app.include_router(api_router)
    app.include_router(ws.router)  # WebSockets authenticate themselves (header or message)

    require_authentication(app)
    require_json_bodies(app)


@dataclass(frozen=True, slots=True)
class HttpRoute:
    path: str
    methods: frozenset[str]
    dependant: Any  # fastapi.dependencies.models.Dependant, with the routers' dependencies
    route: APIRoute  # as declared


def http_routes(app: FastAPI) -> list[HttpRoute]:
    """Every FastAPI HTTP route as served, through included routers."""
    # FastAPI >= 0.16x keeps included routers as nodes of app.routes and resolves them
    # lazily; older versions flattened them into APIRoutes.
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    pairs: list[tuple[Any, Any]] = (
        [(context.original_route, context) for context in iter_contexts(app.routes)]
        if iter_contexts is not None
        else [(route, route) for route in app.routes]
    )
    return [
        HttpRoute(
            served.path_format or served.path,
            frozenset(served.methods or ()),
            served.dependant,
            original,
        )
        for original, served in pairs
        if isinstance(original, APIRoute)
    ]


def dependency_calls(dependant: Any) -> Iterator[Any]:
    """The callables of every dependency of ``dependant``, recursively."""
    for sub in dependant.dependencies:
        yield sub.call
        yield from dependency_calls(sub)


def unauthenticated_routes(app: FastAPI) -> list[str]:
    """HTTP routes outside ``OPEN_PATHS`` that would answer without a key."""
    return [
        f"{','.join(sorted(route.methods))} {route.path}"
        for route in http_routes(app)
        if route.path not in OPEN_PATHS and current_key not in dependency_calls(route.dependant)
    ]


def require_authentication(app: FastAPI) -> None:
    missing = unauthenticated_routes(app)
    if missing:
        raise RuntimeError(
            "routes without API key authentication: "
            + "; ".join(missing)
            + " (include their router on api_router in app/routes/__init__.py, "
            "or list the path in OPEN_PATHS if it is meant to be open)"
        )


def require_json_bodies(app: FastAPI) -> None:
    lenient = [
        f"{','.join(sorted(route.methods))} {route.path}"
        for route in http_routes(app)
        if reads_json_body(route.route) and not isinstance(route.route, JsonBodyRoute)
    ]
    if lenient:
        raise RuntimeError(
            "routes that would not read their body as JSON whatever its Content-Type: "
            + "; ".join(lenient)
            + " (declare their router with route_class=JsonBodyRoute, app/routes/bodies.py)"
        )
