"""The Kite Connect adapter's services, built once in the lifespan from the shared ones."""

from __future__ import annotations

from dataclasses import dataclass

from app.metrics import Metrics
from app.services.access.auth import AuthService
from app.services.instruments.registry import InstrumentRegistry
from app.services.kite.account import KiteAccount
from app.services.kite.market import KiteMarket
from app.services.kite.orders import KiteOrders
from app.services.kite.ticker import KiteCodec, KiteTickerSessions
from app.services.orders.entry import OrderEntry
from app.services.orders.reads import OrderReads
from app.services.positions.reads import PositionReads
from app.services.ticker import CandleService, TickerService
from app.store.database import Database


@dataclass(frozen=True, slots=True)
class KiteServices:
    orders: KiteOrders
    market: KiteMarket
    account: KiteAccount
    ticker: KiteTickerSessions
    cash: float  # each account's cash unless its key file says otherwise


def build_kite(
    *,
    orders: OrderEntry,
    reads: OrderReads,
    positions: PositionReads,
    database: Database,
    registry: InstrumentRegistry,
    ticker: TickerService,
    candles: CandleService,
    auth: AuthService,
    metrics: Metrics,
    cash: float,
    max_instruments: int,
    max_connections_per_key: int,
) -> KiteServices:
    kite_orders = KiteOrders(orders=orders, reads=reads, database=database, registry=registry)
    return KiteServices(
        orders=kite_orders,
        market=KiteMarket(registry=registry, snapshots=ticker.snapshots, candles=candles),
        account=KiteAccount(reads=reads, registry=registry, positions=positions),
        ticker=KiteTickerSessions(
            hub=ticker.hub,
            auth=auth,
            registry=registry,
            snapshots=ticker.snapshots,
            codec=KiteCodec(registry=registry, orders=kite_orders),
            metrics=metrics,
            max_instruments=max_instruments,
            max_connections_per_key=max_connections_per_key,
        ),
        cash=cash,
    )
