"""The app factory: ``create_app(settings)`` wires the object graph once, in the lifespan.

Start-up order: the journal's file lock (``ROLE=all`` on SQLite: one process per journal, taken
before migrations touch the file), database (with retries, then migrations), Redis, services,
background tasks.
Shutdown runs in reverse: stop background tasks, close Redis, dispose the pool. uvicorn
handles SIGTERM: it stops accepting, lets in-flight requests finish, then runs our shutdown.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info

from app import __version__
from app.background import BackgroundTasks
from app.metrics import Metrics
from app.middleware import BodyLimitMiddleware, RequestContextMiddleware
from app.roles import start_trading
from app.routes import OPEN_PATHS, include_routers
from app.routes.errors import install_error_handlers
from app.routes.kite import KiteDispatch
from app.routes.lean import LeanApp
from app.routes.openapi import install_openapi
from app.services.clock import SYSTEM_CLOCK, Clock
from app.services.health import HealthService
from app.services.kite.service import build_kite
from app.services.ticker import CandleService
from app.services.trading_day.days import TradingDays
from app.services.trading_day.service import CalendarService
from app.settings import Role, Settings
from app.state import AppState
from app.store.claims import FileClaim
from app.store.redis import RedisStore
from app.wiring import (
    build_auth,
    claim_journal_file,
    load_calendar,
    load_registry,
    open_database,
    start_ticker,
    start_webhooks,
)

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
        claim = journal_claim if journal_claim is not None else claim_journal_file(settings)
        try:
            async with _running() as state:
                yield state
        finally:
            if claim is not None and journal_claim is None:
                claim.release()

    @asynccontextmanager
    async def _running() -> AsyncIterator[AppState]:
        database = await open_database(settings)
        log.info(
            "database ready",
            extra={"database": database.describe(), "timescaledb": database.timescaledb},
        )
        redis = await RedisStore.connect(
            settings.redis.url,
            prefix=settings.redis.prefix,
            socket_timeout=settings.redis.socket_timeout,
            data_dir=settings.db.data_dir,
        )
        background = BackgroundTasks()
        calendar = load_calendar(settings)
        auth = build_auth(settings, metrics)
        background.start("api-key-files", auth.watch(settings.auth.tokens_poll_seconds))
        health = HealthService(
            database=database,
            redis=redis,
            metrics=metrics,
            environment=settings.environment.value,
            version=__version__,
            timeout=settings.health_check_timeout,
        )
        background.start("dependency-checks", health.watch(settings.health_check_interval))
        registry = await load_registry(settings, database, metrics)
        health.add_dependency("instrument_registry", registry.health)
        health.add_readiness_gate("instrument_registry", registry.is_loaded)
        background.start("instrument-refresh", registry.run_periodic())
        trading = await start_trading(
            settings,
            database=database,
            redis=redis,
            registry=registry,
            metrics=metrics,
            background=background,
            calendar=calendar,
            clock=clock,
            position_limit=auth.position_limit,
        )
        sessions = CalendarService(calendar=calendar, registry=registry, clock=clock)
        health.add_section("sessions", sessions.health)
        if trading.journal is not None:
            health.add_dependency("journal", trading.journal.health)
        if trading.claim is not None:
            health.add_readiness_gate(
                "journal_claim", trading.claim.is_held, detail=trading.claim.waiting_for
            )
            health.add_section("journal_claim", trading.claim.health)
        health.add_readiness_gate("order_books", trading.ready)
        webhooks, dispatcher = await start_webhooks(
            settings,
            database=database,
            registry=registry,
            metrics=metrics,
            background=background,
            journal=trading.journal,
        )
        health.add_dependency("webhooks", dispatcher.health)
        ticker = await start_ticker(
            settings,
            trading=trading,
            database=database,
            redis=redis,
            registry=registry,
            auth=auth,
            metrics=metrics,
            background=background,
            days=TradingDays(calendar=calendar, registry=registry),
            clock=clock,
        )
        health.add_section("ticker", ticker.health)
        candles = CandleService(database=database, registry=registry)
        kite = build_kite(
            orders=trading.entry,
            reads=trading.reads,
            positions=trading.positions,
            database=database,
            registry=registry,
            ticker=ticker,
            candles=candles,
            auth=auth,
            metrics=metrics,
            cash=settings.kite_cash,
            max_instruments=settings.ticker.max_instruments_per_connection,
            max_connections_per_key=settings.ticker.max_connections_per_key,
        )
        trading.keep_trading_day(background)
        if settings.cluster.role is not Role.MATCHER:  # where Kite's API is served
            await kite.orders.rearm_ttl(clock.now_ns())
        state = AppState(
            settings=settings,
            metrics=metrics,
            database=database,
            redis=redis,
            health=health,
            auth=auth,
            background=background,
            registry=registry,
            orders=trading.entry,
            market=trading.market,
            order_reads=trading.reads,
            webhooks=webhooks,
            ticker=ticker,
            subscriptions=ticker.subscriptions,
            candles=candles,
            kite=kite,
            positions=trading.positions,
            calendar=sessions,
        )
        # Everything built so far (registry, books) lives as long as the process: keep it out
        # of the collector's passes, which shortens GC pauses on the order path.
        gc.freeze()
        # The order path allocates many short-lived objects; with the default threshold
        # (700) young collections run every few orders and, as open orders accumulate,
        # the older generations get expensive. A larger threshold trades a little memory for
        # far fewer passes (measured in bench/orders.py).
        gc.set_threshold(50_000, 20, 50)
        log.info("service started", extra={"environment": settings.environment.value})
        try:
            yield state
        finally:
            log.info("service stopping")
            kite.orders.stop()
            if trading.journal is not None:
                await trading.journal.flush()
            await ticker.stop()
            await background.stop()
            if trading.claim is not None:
                await trading.claim.release()
            await redis.close()
            await database.dispose()
            log.info("service stopped")

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
