"""The typed lifespan state: the shared objects every request can reach through ``deps``."""

from __future__ import annotations

from typing import TypedDict

from app.background import BackgroundTasks
from app.metrics import Metrics
from app.services.access.auth import AuthService
from app.services.health import HealthService
from app.services.instruments.registry import InstrumentRegistry
from app.services.kite.service import KiteServices
from app.services.orders.entry import MarketData, OrderEntry
from app.services.orders.reads import OrderReads
from app.services.positions.reads import PositionReads
from app.services.ticker import CandleService, SubscriptionService, TickerService
from app.services.trading_day.service import CalendarService
from app.services.webhooks.endpoints import WebhookService
from app.settings import Settings
from app.store.database import Database
from app.store.redis import RedisStore


class AppState(TypedDict):
    settings: Settings
    metrics: Metrics
    database: Database
    redis: RedisStore
    health: HealthService
    auth: AuthService
    background: BackgroundTasks
    registry: InstrumentRegistry
    orders: OrderEntry
    market: MarketData
    order_reads: OrderReads
    webhooks: WebhookService
    ticker: TickerService
    subscriptions: SubscriptionService
    candles: CandleService
    kite: KiteServices
    positions: PositionReads
    calendar: CalendarService
