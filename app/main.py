"""The app factory: ``create_app(settings)`` builds the routes and middleware; its lifespan
builds the object graph once, with the role's composition root (``app.roots``), starts it,
and stops it at shutdown.

Start-up order (``app.roots``): the journal's file lock (``ROLE=all`` on SQLite: one process
per journal, taken before migrations touch the file), database (with retries, then
migrations), Redis, services, background tasks. Shutdown runs in reverse: stop background
tasks, close Redis, dispose the pool. uvicorn handles SIGTERM: it stops accepting, lets
in-flight requests finish, then runs our shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info

from app import __version__
from app.metrics import Metrics
from app.middleware import BodyLimitMiddleware, RequestContextMiddleware
from app.roots import BUILDERS
from app.routes import OPEN_PATHS, include_routers
from app.routes.errors import install_error_handlers
from app.routes.kite import KiteDispatch
from app.routes.lean import LeanApp
from app.routes.openapi import install_openapi
from app.services.clock import SYSTEM_CLOCK, Clock
from app.settings import Role, Settings
from app.state import AppState
from app.store.claims import FileClaim

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, journal_claim: FileClaim | None = None, clock: Clock | None = None
) -> FastAPI:
    """``journal_claim``: the SQLite file lock when the caller took it already (``serve``
    does, to refuse with one line before anything starts); else the lifespan takes it.
    ``clock``: the one clock the service reads time through (tests drive their own)."""
    metrics = Metrics()
    clock = clock or SYSTEM_CLOCK

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[AppState]:
        build = BUILDERS[settings.cluster.role]
        service = await build(settings, metrics=metrics, clock=clock, journal_claim=journal_claim)
        try:
            await service.start()
            yield service.state
        finally:
            await service.stop()

    app = LeanApp(
        title="ticker-service",
        version=__version__,
        summary="Instrument registry, batch order routing into price-time-priority books, "
        "WebSocket ticks and signed webhooks",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served offline by app.routes.docs
        redoc_url=None,
    )
    install_error_handlers(app)
    include_routers(app, health_only=settings.cluster.role is Role.MATCHER)
    install_openapi(app)
    # The instrumentator names each request's route; the series are ours (app.metrics), which
    # the order routes' lean path records into directly.
    Instrumentator(
        registry=metrics.registry,
        should_group_status_codes=False,
        excluded_handlers=sorted(OPEN_PATHS),
    ).add(_recorder(metrics)).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=False
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["X-API-Key", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cluster.role is not Role.MATCHER:
        # Inside the request id and access log, before our API's body limit and errors.
        app.add_middleware(KiteDispatch, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, access_log_enabled=settings.log.access_log)
    if settings.cluster.role is not Role.MATCHER:
        app.enable_lean_path(
            metrics=metrics.http,
            max_body_bytes=settings.max_body_bytes,
            access_log=settings.log.access_log,
        )
    return app


def _recorder(metrics: Metrics) -> Callable[[Info], None]:
    """The instrumentator's hook: what its default metrics recorded, into ``metrics.http``."""

    def record(info: Info) -> None:
        response = info.response
        metrics.http.observe(
            info.method,
            info.modified_status,
            info.modified_handler,
            request_bytes=int(info.request.headers.get("Content-Length", 0)),
            response_bytes=int(response.headers.get("Content-Length", 0)) if response else 0,
            seconds=info.modified_duration,
        )

    return record
