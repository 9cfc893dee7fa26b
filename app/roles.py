"""What each role runs (``ROLE``, README "Scaling out").

- ``all``: the order service in process, owning every book (shard 0 of 1). One such process
  per journal: on SQLite the lifespan holds a file lock beside the database (taken before
  migrations, ``app.wiring.claim_journal_file``); on PostgreSQL this module takes the journal
  claim (advisory lock + fence, ``app.services.cluster.claim``) or waits for it as a standby.
- ``matcher``: the order service for one shard, fed by that shard's Redis stream, once it
  holds the shard's lease; its journal checks the lease's fencing token on every commit.
- ``gateway``: no books; orders go to the matchers over Redis Streams.

Routes see the same ``OrderEntry``/``MarketData`` either way.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass

from app.background import BackgroundTasks
from app.metrics import Metrics
from app.services.clock import SYSTEM_CLOCK, Clock
from app.services.cluster.claim import JournalClaimService
from app.services.cluster.gateway import StreamOrderEntry
from app.services.cluster.hop import ReplyListener
from app.services.cluster.lease import ShardLease
from app.services.cluster.matcher import Matcher
from app.services.instruments.registry import InstrumentRegistry
from app.services.orders.entry import MarketData, OrderEntry
from app.services.orders.journal import JournalUnit, JournalWriter
from app.services.orders.market import MarketDataService
from app.services.orders.reads import OrderReads
from app.services.orders.risk import CircuitBreaker, RiskChecker, RiskLimits
from app.services.orders.service import OrderService
from app.services.orders.session import PositionLimit
from app.services.orders.shard import Shard
from app.services.positions.reads import PositionReads
from app.services.positions.service import PositionBook
from app.services.trading_day.calendar import TradingCalendar
from app.settings import Role, Settings
from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.fences import StaleFence, guard_fence, install_fence, stored_fence
from app.store.redis import RedisStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Trading:
    entry: OrderEntry
    market: MarketData
    reads: OrderReads
    local_books: OrderService | None  # the local books (None on a gateway)
    journal: JournalWriter | None
    positions: PositionReads
    claim: JournalClaimService | None = None  # ROLE=all on PostgreSQL

    def ready(self) -> bool:
        return self.local_books is None or self.local_books.ready

    def keep_trading_day(self, background: BackgroundTasks) -> None:
        """The sweep's timer (``OrderService.keep_trading_day``), once everything that
        listens to the journal (webhook outbox, ticks, order streams) is in place: a sweep
        at start-up must not commit before its webhooks' hook is there."""
        books = self.local_books
        if books is not None:
            background.start("trading-day", books.keep_trading_day(books.session_check_seconds))


def instance_id(settings: Settings) -> str:
    return settings.cluster.instance_id or f"{socket.gethostname()}-{os.getpid()}"


def build_order_service(
    settings: Settings,
    *,
    database: Database,
    registry: InstrumentRegistry,
    metrics: Metrics,
    shard: Shard,
    calendar: TradingCalendar | None = None,
    clock: Clock = SYSTEM_CLOCK,
    position_limit: PositionLimit | None = None,
) -> OrderService:
    limits = settings.orders
    calendar = calendar or TradingCalendar.default()
    journal = JournalWriter(database=database, metrics=metrics)
    positions = PositionBook(database=database, calendar=calendar, registry=registry, shard=shard)
    # Positions move in the transaction of the fills that move them (before the outbox hook).
    journal.add_transaction_hook(positions.write)
    journal.add_listener(positions.after_commit)
    window_ns = int(limits.breaker_window_seconds * 1e9)
    orders = OrderService(
        database=database,
        registry=registry,
        journal=journal,
        metrics=metrics,
        risk=RiskChecker(
            RiskLimits(
                max_order_quantity=limits.max_order_quantity,
                max_notional=limits.max_notional,
                max_open_orders=limits.max_open_orders,
                price_band_percent=limits.price_band_percent,
            )
        ),
        breaker=CircuitBreaker(percent=limits.breaker_percent, window_ns=window_ns),
        max_batch_orders=limits.max_batch_orders,
        shard=shard,
        clock=clock.now_ns,
        calendar=calendar,
        positions=positions,
        position_limit=position_limit,
        session_check_seconds=limits.session_check_seconds,
    )
    journal.set_failure_handler(orders.on_journal_failure)
    return orders


async def start_trading(
    settings: Settings,
    *,
    database: Database,
    redis: RedisStore,
    registry: InstrumentRegistry,
    metrics: Metrics,
    background: BackgroundTasks,
    calendar: TradingCalendar | None = None,
    clock: Clock = SYSTEM_CLOCK,
    position_limit: PositionLimit | None = None,
) -> Trading:
    cluster = settings.cluster
    calendar = calendar or TradingCalendar.default()
    reads = OrderReads(database=database, registry=registry)
    positions = PositionReads(database=database, registry=registry, calendar=calendar, clock=clock)
    if cluster.role is Role.GATEWAY:
        replies = ReplyListener(redis, instance_id(settings))
        background.start("gateway-replies", replies.run())
        router = StreamOrderEntry(
            redis=redis,
            database=database,
            registry=registry,
            replies=replies,
            metrics=metrics,
            shards=cluster.shards,
            timeout=cluster.shard_timeout,
            max_batch_orders=settings.orders.max_batch_orders,
        )
        return Trading(
            entry=router,
            market=router,
            reads=reads,
            local_books=None,
            journal=None,
            positions=positions,
        )

    shard = Shard(cluster.shard_id, cluster.shards) if cluster.role is Role.MATCHER else Shard()
    orders = build_order_service(
        settings,
        database=database,
        registry=registry,
        metrics=metrics,
        shard=shard,
        calendar=calendar,
        clock=clock,
        position_limit=position_limit,
    )
    market = MarketDataService(orders=orders, registry=registry, database=database)
    if cluster.role is Role.ALL:
        trading = Trading(
            entry=orders,
            market=market,
            reads=reads,
            local_books=orders,
            journal=orders.journal,
            positions=positions,
        )
        if database.is_postgres:
            trading.claim = await _claim_journal(settings, database, orders, background)
        else:  # SQLite: the lifespan already holds the file lock
            await _serve_books(orders, background)
        return trading

    lease = ShardLease(
        redis=redis, shard=shard.shard_id, holder=instance_id(settings), ttl=cluster.lease_seconds
    )
    matcher = Matcher(redis=redis, orders=orders, market=market)
    background.start("matcher", _run_matcher(lease, matcher, orders, database, background))
    return Trading(
        entry=orders,
        market=market,
        reads=reads,
        local_books=orders,
        journal=orders.journal,
        positions=positions,
    )


async def _serve_books(orders: OrderService, background: BackgroundTasks) -> None:
    await orders.start()
    orders.journal.resume()
    background.start("journal-writer", orders.journal.run())


async def _claim_journal(
    settings: Settings, database: Database, orders: OrderService, background: BackgroundTasks
) -> JournalClaimService:
    """Hold the journal's claim and serve; or, if another process holds it, stay a standby
    (alive, not ready, refusing orders) that takes over when the holder's session ends."""
    claim = JournalClaimService(database=database, holder=instance_id(settings))
    orders.journal.add_transaction_hook(claim.guard)
    if await claim.try_take():
        await _serve_books(orders, background)
        background.start("journal-claim", _keep_journal(claim, orders))
        return claim
    orders.journal.suspend(claim.waiting_for())
    log.warning("another process holds the journal; %s", claim.waiting_for())

    async def standby() -> None:
        await claim.wait()
        await _serve_books(orders, background)
        log.info("journal claim taken over; books rebuilt, serving orders")
        await _keep_journal(claim, orders)

    background.start("journal-claim", standby())
    return claim


async def _keep_journal(claim: JournalClaimService, orders: OrderService) -> None:
    """Hold the claim. If its session ends (database restart, network cut), stop taking
    orders until the claim is ours again, then rebuild the books: another process may have
    held it and written in between. No restart needed, as for any journal outage."""
    while True:
        await claim.keep()
        orders.suspend(claim.waiting_for())
        # What is still queued was computed on books that may be stale: it fails on the
        # fence now, rather than commit under the token taken next.
        await orders.journal.flush()
        await claim.wait()
        await orders.start()
        orders.journal.resume()
        log.info("journal claim taken again; books rebuilt from the journal")


async def _run_matcher(
    lease: ShardLease,
    matcher: Matcher,
    orders: OrderService,
    database: Database,
    background: BackgroundTasks,
) -> None:
    """Standby until the shard's lease is ours; then rebuild the books and consume."""
    shard = orders.shard.shard_id
    token = await lease.acquire()
    try:
        await install_fence(database, shard, token, lease.holder)
    except StaleFence:
        # We hold the lease, so a larger stored token can only mean Redis lost its counter.
        token = await lease.advance_fence(await stored_fence(database, shard))
        await install_fence(database, shard, token, lease.holder)
        log.warning("fencing counter was behind PostgreSQL; advanced to %s", token)

    def fence(tx: JournalTransaction, _units: list[JournalUnit]) -> None:
        guard_fence(tx, shard, token)

    orders.journal.add_transaction_hook(fence)
    await orders.start()
    background.start("journal-writer", orders.journal.run())
    background.start("shard-lease", lease.keep(_lease_lost(orders)))
    log.info("matcher serving shard %s of %s", shard, orders.shard.shards)
    await matcher.run()


def _lease_lost(orders: OrderService) -> Callable[[], None]:
    def lost() -> None:
        # Another matcher may own the shard now: take no more orders, and exit so the
        # orchestrator restarts this process as a standby.
        orders.suspend("shard lease lost")
        log.error("shard lease lost; stopping this matcher")
        os.kill(os.getpid(), signal.SIGTERM)

    return lost
