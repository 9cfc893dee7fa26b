"""The pieces the composition roots (``app.roots``) assemble: database, calendar, keys,
registry, order service, webhooks, ticker.

Each builder takes the settings and what it depends on, starts its background work on the
given ``BackgroundTasks`` (if it has any) and returns the service; only the roots call them.
"""

from __future__ import annotations

import logging
import os
import socket

from sqlalchemy.exc import InterfaceError, OperationalError
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from app.background import BackgroundTasks
from app.logs import register_secret
from app.metrics import Metrics
from app.services.access.auth import AuthService
from app.services.access.keys import ALL_SCOPES, DEVELOPMENT_ACCOUNT, KeyFileError, create_key_file
from app.services.clock import SYSTEM_CLOCK, Clock
from app.services.instruments.importer import BUNDLED_INSTRUMENTS_CSV, InstrumentImporter
from app.services.instruments.registry import InstrumentRegistry
from app.services.orders.journal import JournalWriter
from app.services.orders.risk import CircuitBreaker, RiskChecker, RiskLimits
from app.services.orders.service import OrderService
from app.services.orders.session import PositionLimit
from app.services.orders.shard import Shard
from app.services.positions.service import PositionBook
from app.services.ticker import (
    SubscriptionService,
    TickerLimits,
    TickerService,
)
from app.services.ticker.config import CancelAll
from app.services.trading_day.calendar import TradingCalendar
from app.services.trading_day.days import TradingDays
from app.services.webhooks.dispatcher import DispatchConfig, Dispatcher
from app.services.webhooks.endpoints import WebhookService
from app.services.webhooks.outbox import OutboxWriter
from app.services.webhooks.ssrf import TargetPolicy
from app.settings import Role, Settings
from app.store.claims import FileClaim, describe_holder, sqlite_file
from app.store.database import Database
from app.store.instruments import InstrumentStore
from app.store.migrate import migrate
from app.store.redis import RedisStore

log = logging.getLogger(__name__)


def claim_journal_file(settings: Settings) -> FileClaim | None:
    """``ROLE=all`` on SQLite: lock the file beside the database, or raise ``JournalClaimed``
    naming the holder. None where the claim is not a file (PostgreSQL: ``hold_journal_claim``
    in ``app.services.cluster.serving``)."""
    if settings.cluster.role is not Role.ALL:
        return None
    path = sqlite_file(settings.db.url, settings.db.data_dir)
    if path is None:
        return None
    return FileClaim.acquire(path.resolve(), describe_holder(settings.cluster.instance_id))


async def open_database(settings: Settings, *, startup_timeout: float | None = None) -> Database:
    """Connect and migrate, retrying while PostgreSQL comes up (compose/k8s start order)."""
    database = Database.create(
        settings.db.url,
        data_dir=settings.db.data_dir,
        pool_size=settings.db.pool_size,
        connect_timeout=settings.db.connect_timeout,
    )
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(
            0 if database.is_sqlite else (startup_timeout or settings.db.startup_timeout)
        ),
        wait=wait_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception_type((OSError, OperationalError, InterfaceError)),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            await migrate(database, use_timescaledb=settings.db.use_timescaledb)
    return database


def load_calendar(settings: Settings) -> TradingCalendar:
    """The session calendars (``TRADING_CALENDAR``); says which is in force (``make run``)."""
    calendar = TradingCalendar.load(settings.orders.trading_calendar)
    print(f"trading calendar: {calendar.describe()}", flush=True)
    log.info("trading calendar", extra={"calendar": calendar.describe()})
    return calendar


def build_auth(settings: Settings, metrics: Metrics) -> AuthService:
    """The key store. In development with no key at all, first create one and print it:
    ``make run`` relies on this line to show the user a key. The file keeps the key itself
    (development only), so ``ticker-service keys show-dev`` can print it again."""
    auth = settings.auth
    if not settings.is_production and not auth.api_key and not auth.has_key_files():
        try:
            created = create_key_file(
                auth.tokens_dir,
                account=DEVELOPMENT_ACCOUNT,
                scopes=ALL_SCOPES,
                name=DEVELOPMENT_ACCOUNT,
                keep_plain=True,
            )
        except (OSError, KeyFileError) as exc:
            log.error("could not create a development API key in %s: %s", auth.tokens_dir, exc)
        else:
            register_secret(created.key)
            print(f"development API key: {created.key}", flush=True)
            print(
                f"  (account {DEVELOPMENT_ACCOUNT!r}, all scopes; kept in {created.path}: "
                "`ticker-service keys show-dev` prints it again)",
                flush=True,
            )
    return AuthService(
        api_key=auth.api_key,
        tokens_dir=auth.tokens_dir,
        rate_limit=auth.rate_limit,
        rate_limit_burst=auth.rate_limit_burst,
        unauthenticated_rate_limit=auth.unauthenticated_rate_limit,
        metrics=metrics,
        default_max_position=settings.orders.max_position,
    )


async def load_registry(
    settings: Settings, database: Database, metrics: Metrics
) -> InstrumentRegistry:
    """The instrument registry, loaded once. An empty table is seeded first from
    ``INSTRUMENTS_SEED_CSV``, or in development (unset) from the bundled sample."""
    store = InstrumentStore(database)
    seed = settings.registry.seed_csv
    if seed is None and not settings.is_production:
        seed = BUNDLED_INSTRUMENTS_CSV
    if seed is not None:
        await InstrumentImporter(store=store).seed_if_empty(seed)
    registry = InstrumentRegistry(
        store=store, metrics=metrics, refresh_seconds=settings.registry.refresh_seconds
    )
    await registry.refresh()
    return registry


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
    """The local books with their journal writer (not yet running: the role starts it)."""
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


async def start_webhooks(
    settings: Settings,
    *,
    database: Database,
    registry: InstrumentRegistry,
    metrics: Metrics,
    background: BackgroundTasks,
    journal: JournalWriter | None,
) -> tuple[WebhookService, Dispatcher]:
    """The outbox hook in the journal's transaction, and the dispatcher delivering from it."""
    hooks = settings.webhooks
    policy = TargetPolicy(
        allow_loopback=hooks.allow_loopback, allow_private=hooks.allow_private_targets
    )
    outbox = OutboxWriter(
        database=database,
        registry=registry,
        metrics=metrics,
        retry_horizon_ns=int(hooks.retry_horizon_seconds * 1e9),
    )
    dispatcher = Dispatcher(
        database=database,
        outbox=outbox,
        metrics=metrics,
        policy=policy,
        config=DispatchConfig(
            concurrency=hooks.concurrency,
            endpoint_concurrency=hooks.endpoint_concurrency,
            connect_timeout=hooks.connect_timeout,
            read_timeout=hooks.read_timeout,
            retry_initial_seconds=hooks.retry_initial_seconds,
            retry_max_seconds=hooks.retry_max_seconds,
            poll_seconds=hooks.poll_seconds,
            retention_seconds=hooks.retention_days * 86400,
        ),
    )
    await outbox.refresh()
    outbox.on_written(dispatcher.batches_written)
    if journal is not None:  # a gateway journals nothing: it only dispatches
        journal.add_transaction_hook(outbox.write)
        journal.add_listener(outbox.after_commit)
    background.start("webhook-dispatcher", dispatcher.run())
    service = WebhookService(
        database=database,
        outbox=outbox,
        dispatcher=dispatcher,
        policy=policy,
        max_endpoints=hooks.max_endpoints_per_account,
        secret_grace_ns=int(hooks.secret_grace_seconds * 1e9),
    )
    return service, dispatcher


async def start_ticker(
    settings: Settings,
    *,
    local_books: OrderService | None,
    cancel_all: CancelAll,
    database: Database,
    redis: RedisStore,
    registry: InstrumentRegistry,
    auth: AuthService,
    metrics: Metrics,
    background: BackgroundTasks,
    days: TradingDays | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> TickerService:
    """WebSocket streams and tick fan-out, fed by the journal of the local books (if any)."""
    ticker_settings = settings.ticker
    subscriptions = SubscriptionService(database=database, registry=registry)
    ticker = TickerService(
        local_books=local_books,
        cancel_all=cancel_all,
        registry=registry,
        auth=auth,
        redis=redis,
        database=database,
        subscriptions=subscriptions,
        metrics=metrics,
        limits=TickerLimits(
            max_instruments=ticker_settings.max_instruments_per_connection,
            max_connections_per_key=ticker_settings.max_connections_per_key,
            heartbeat_seconds=ticker_settings.heartbeat_seconds,
            idle_timeout_seconds=ticker_settings.idle_timeout_seconds,
            auth_timeout_seconds=ticker_settings.auth_timeout_seconds,
            send_queue_limit=ticker_settings.send_queue_limit,
            slow_client_seconds=ticker_settings.slow_client_seconds,
            registry_ttl_seconds=ticker_settings.registry_ttl_seconds,
            flush_interval_seconds=ticker_settings.flush_interval_ms / 1000,
        ),
        replica_id=settings.cluster.instance_id,
        days=days,
        clock=clock,
    )
    await ticker.start(background)
    return ticker
