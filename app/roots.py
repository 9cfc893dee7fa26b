"""The composition roots: one builder per ``ROLE`` (README "Scaling out"), each returning the
``Service`` the lifespan starts and stops.

- ``build_all``: the order service in process, owning every book (shard 0 of 1). One such
  process per journal: on SQLite it holds a file lock beside the database (taken before
  migrations touch the file); on PostgreSQL the journal's claim (advisory lock + fence), or
  it waits for the claim as a standby.
- ``build_matcher``: the order service for one shard, fed by that shard's Redis stream once
  it holds the shard's lease; its journal checks the lease's fencing token on every commit.
- ``build_gateway``: no books; orders go to the matchers over Redis Streams.

Every role builds in the same order: the stores (database with retries, then migrations;
Redis), the key store, health, the instrument registry (``_open_core``); then the role's
order path; then what listens to the journal and serves the edges: webhook outbox and
dispatcher, ticker, candles, Kite (``_assemble``). Each piece starts its background work as
it is built, so what it needs is running before it. ``Service.start`` arms the trading day's
timer and Kite's TTL timers once everything that listens to the journal is in place;
``Service.stop`` shuts down in reverse. Routes see the same ``OrderEntry``/``MarketData``
whichever role built them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from app import __version__, collector
from app.background import BackgroundTasks
from app.collector import PauseTimer, QuietCollector
from app.metrics import Metrics
from app.services.access.auth import AuthService
from app.services.clock import Clock
from app.services.cluster.claim import JournalClaimService
from app.services.cluster.gateway import StreamOrderEntry
from app.services.cluster.hop import ReplyListener
from app.services.cluster.lease import ShardLease
from app.services.cluster.matcher import Matcher
from app.services.cluster.serving import hold_journal_claim, run_matcher, serve_books
from app.services.health import HealthService
from app.services.instruments.registry import InstrumentRegistry
from app.services.kite.service import KiteServices, build_kite
from app.services.orders.entry import MarketData, OrderEntry
from app.services.orders.market import MarketDataService
from app.services.orders.reads import OrderReads
from app.services.orders.service import OrderService
from app.services.orders.shard import Shard
from app.services.positions.reads import PositionReads
from app.services.ticker import CandleService, TickerService
from app.services.trading_day.calendar import TradingCalendar
from app.services.trading_day.days import TradingDays
from app.services.trading_day.service import CalendarService
from app.settings import Role, Settings
from app.state import AppState
from app.store.claims import FileClaim
from app.store.database import Database
from app.store.redis import RedisStore
from app.wiring import (
    build_auth,
    build_order_service,
    claim_journal_file,
    instance_id,
    load_calendar,
    load_registry,
    open_database,
    start_ticker,
    start_webhooks,
)

log = logging.getLogger(__name__)

# Each step of ``Service.stop`` and its bound, in seconds: 10 in all.
STOP_SECONDS = {
    "journal": 2.0,  # the queue's last commits
    "ticker": 1.5,  # leaving the replicas' registry (Redis)
    "background": 3.0,  # cancelled tasks' own clean-up, e.g. the webhook leases given back
    "claim": 1.0,
    "redis": 1.0,
    "database": 1.5,
}


@dataclass(slots=True, kw_only=True)
class Service:
    """One role's object graph, built and running: ``state`` is what requests reach."""

    state: AppState
    clock: Clock
    local_books: OrderService | None  # None on a gateway
    ticker: TickerService
    kite: KiteServices
    claim: JournalClaimService | None = None  # ROLE=all on PostgreSQL
    file_claim: FileClaim | None = None  # ROLE=all on SQLite, when the builder took it
    gc_timer: PauseTimer | None = None  # ``app.collector``'s handle, from start to stop

    async def start(self) -> None:
        settings, clock = self.state["settings"], self.clock
        books = self.local_books
        if books is not None:
            # The sweep's timer, only now: a sweep at start-up must not commit before the
            # webhooks' hook, ticks and order streams listen to the journal.
            self.state["background"].start(
                "trading-day", books.keep_trading_day(books.session_check_seconds)
            )
        if settings.cluster.role is not Role.MATCHER:  # where Kite's API is served
            await self.kite.orders.rearm_ttl(clock.now_ns())
        # Everything built so far stays out of the collector's passes and, where books are
        # kept, no pass walks what the order path keeps: a full pass when it is quiet
        # (``app.collector``).
        self.gc_timer = collector.apply(
            self.state["metrics"].gc_pause_seconds, keeps_books=books is not None
        )
        if books is not None:
            quiet = QuietCollector(books.journal.idle_seconds)
            self.state["background"].start("collector", quiet.keep())
        log.info("service started", extra={"environment": settings.environment.value})

    async def stop(self) -> None:
        """Each step has its bound (``STOP_SECONDS``): one that takes longer (a peer that
        does not answer, a task that does not end) is logged and left, and the rest still
        runs, so a stop ends within 10 s (Kubernetes' 30 s grace period less the ``preStop``
        pause and uvicorn's drain). Nothing acknowledged depends on it: what a client was
        answered is committed already."""
        try:
            log.info("service stopping")
            self.kite.orders.stop()
            books = self.local_books
            if books is not None and not await books.journal.flush(STOP_SECONDS["journal"]):
                log.error("service stop: the journal's queue was not committed in time")
            await _step("ticker", self.ticker.stop())
            await self.state["background"].stop(STOP_SECONDS["background"])
            if self.claim is not None:
                await _step("claim", self.claim.release())
            await _step("redis", self.state["redis"].close())
            await _step("database", self.state["database"].dispose())
            log.info("service stopped")
        finally:
            if self.gc_timer is not None:
                collector.release(self.gc_timer)
            if self.file_claim is not None:
                self.file_claim.release()


async def _step(name: str, step: Awaitable[None]) -> None:
    """One step of ``Service.stop``, cancelled after its ``STOP_SECONDS``; one that fails
    is logged, and the stop goes on."""
    seconds = STOP_SECONDS[name]
    try:
        async with asyncio.timeout(seconds):
            await step
    except TimeoutError:
        log.error("service stop: %s took over %.0f s; going on", name, seconds)
    except Exception:
        log.exception("service stop: %s failed; going on", name)


class Builder(Protocol):
    """A role's root. ``journal_claim``: the SQLite file lock when the caller (``serve``) took
    it already; only ``build_all`` uses it."""

    def __call__(
        self,
        settings: Settings,
        *,
        metrics: Metrics,
        clock: Clock,
        journal_claim: FileClaim | None,
    ) -> Awaitable[Service]: ...


async def build_all(
    settings: Settings, *, metrics: Metrics, clock: Clock, journal_claim: FileClaim | None
) -> Service:
    """``journal_claim``: the SQLite file lock when the caller took it already (``serve``
    does, to refuse with one line before anything starts); else taken here, first."""
    file_claim = claim_journal_file(settings) if journal_claim is None else None
    try:
        core = await _open_core(settings, metrics, clock)
        orders = _order_service(core, Shard())
        market = MarketDataService(orders=orders, registry=core.registry, database=core.database)
        claim = None
        if core.database.is_postgres:
            claim = await hold_journal_claim(
                database=core.database,
                orders=orders,
                holder=instance_id(settings),
                background=core.background,
            )
        else:  # SQLite: the file lock is held
            await serve_books(orders, core.background)
        return await _assemble(
            core, entry=orders, market=market, books=orders, claim=claim, file_claim=file_claim
        )
    except BaseException:
        if file_claim is not None:
            file_claim.release()
        raise


async def build_matcher(
    settings: Settings, *, metrics: Metrics, clock: Clock, journal_claim: FileClaim | None
) -> Service:
    """Serves the shard's stream from a background task once the lease is ours."""
    cluster = settings.cluster
    core = await _open_core(settings, metrics, clock)
    shard = Shard(cluster.shard_id, cluster.shards)
    orders = _order_service(core, shard)
    market = MarketDataService(orders=orders, registry=core.registry, database=core.database)
    lease = ShardLease(
        redis=core.redis,
        shard=shard.shard_id,
        holder=instance_id(settings),
        ttl=cluster.lease_seconds,
    )
    matcher = Matcher(redis=core.redis, orders=orders, market=market)
    core.background.start(
        "matcher", run_matcher(lease, matcher, orders, core.database, core.background)
    )
    return await _assemble(core, entry=orders, market=market, books=orders)


async def build_gateway(
    settings: Settings, *, metrics: Metrics, clock: Clock, journal_claim: FileClaim | None
) -> Service:
    """No books and no journal: orders go to the shards' streams, replies come back."""
    cluster = settings.cluster
    core = await _open_core(settings, metrics, clock)
    replies = ReplyListener(core.redis, instance_id(settings))
    core.background.start("gateway-replies", replies.run())
    entry = StreamOrderEntry(
        redis=core.redis,
        database=core.database,
        registry=core.registry,
        replies=replies,
        metrics=metrics,
        shards=cluster.shards,
        timeout=cluster.shard_timeout,
        max_batch_orders=settings.orders.max_batch_orders,
    )
    return await _assemble(core, entry=entry, market=entry, books=None)


BUILDERS: dict[Role, Builder] = {
    Role.ALL: build_all,
    Role.MATCHER: build_matcher,
    Role.GATEWAY: build_gateway,
}


# -- what every role builds ---------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Core:
    settings: Settings
    metrics: Metrics
    clock: Clock
    database: Database
    redis: RedisStore
    background: BackgroundTasks
    calendar: TradingCalendar
    auth: AuthService
    health: HealthService
    registry: InstrumentRegistry


async def _open_core(settings: Settings, metrics: Metrics, clock: Clock) -> _Core:
    """The stores, the key store, health and the instrument registry."""
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
    return _Core(
        settings=settings,
        metrics=metrics,
        clock=clock,
        database=database,
        redis=redis,
        background=background,
        calendar=calendar,
        auth=auth,
        health=health,
        registry=registry,
    )


def _order_service(core: _Core, shard: Shard) -> OrderService:
    return build_order_service(
        core.settings,
        database=core.database,
        registry=core.registry,
        metrics=core.metrics,
        shard=shard,
        calendar=core.calendar,
        clock=core.clock,
        position_limit=core.auth.position_limit,
    )


async def _assemble(
    core: _Core,
    *,
    entry: OrderEntry,
    market: MarketData,
    books: OrderService | None,
    claim: JournalClaimService | None = None,
    file_claim: FileClaim | None = None,
) -> Service:
    """What listens to the journal (webhook outbox, ticker) and what the edges call."""
    settings, database, registry, health = core.settings, core.database, core.registry, core.health
    reads = OrderReads(database=database, registry=registry)
    positions = PositionReads(
        database=database, registry=registry, calendar=core.calendar, clock=core.clock
    )
    sessions = CalendarService(calendar=core.calendar, registry=registry, clock=core.clock)
    health.add_section("sessions", sessions.health)
    if books is not None:
        health.add_dependency("journal", books.journal.health)
    if claim is not None:
        health.add_readiness_gate("journal_claim", claim.is_held, detail=claim.waiting_for)
        health.add_section("journal_claim", claim.health)
    health.add_readiness_gate("order_books", lambda: books is None or books.ready)
    webhooks, dispatcher = await start_webhooks(
        settings,
        database=database,
        registry=registry,
        metrics=core.metrics,
        background=core.background,
        journal=None if books is None else books.journal,
    )
    health.add_dependency("webhooks", dispatcher.health)
    ticker = await start_ticker(
        settings,
        local_books=books,
        cancel_all=entry.cancel_all,
        database=database,
        redis=core.redis,
        registry=registry,
        auth=core.auth,
        metrics=core.metrics,
        background=core.background,
        days=TradingDays(calendar=core.calendar, registry=registry),
        clock=core.clock,
    )
    health.add_section("ticker", ticker.health)
    candles = CandleService(database=database, registry=registry)
    kite = build_kite(
        orders=entry,
        reads=reads,
        positions=positions,
        database=database,
        registry=registry,
        ticker=ticker,
        candles=candles,
        auth=core.auth,
        metrics=core.metrics,
        cash=settings.kite_cash,
        max_instruments=settings.ticker.max_instruments_per_connection,
        max_connections_per_key=settings.ticker.max_connections_per_key,
    )
    state = AppState(
        settings=settings,
        metrics=core.metrics,
        database=database,
        redis=core.redis,
        health=health,
        auth=core.auth,
        background=core.background,
        registry=registry,
        orders=entry,
        market=market,
        order_reads=reads,
        webhooks=webhooks,
        ticker=ticker,
        subscriptions=ticker.subscriptions,
        candles=candles,
        kite=kite,
        positions=positions,
        calendar=sessions,
    )
    return Service(
        state=state,
        clock=core.clock,
        local_books=books,
        ticker=ticker,
        kite=kite,
        claim=claim,
        file_claim=file_claim,
    )
