"""Response shapes for OpenAPI (and for the schemathesis run that checks every response).

Documentation only: the routes build plain dicts and render them with orjson, so these
models cost nothing per request. They list the fields clients rely on; more may be added
(README, "Endpoints": responses may gain fields), so none of them forbids extra properties.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from app.services.orders.parsing import ErrorOut, FillOut

Decimal = str  # a decimal string, e.g. "1875.4"


class KiteTermsOut(BaseModel):
    """Kite Connect's terms of an order placed through the Kite API (README, "Kite Connect
    clients"); our own API neither takes nor uses them."""

    product: Literal["CNC", "MIS", "NRML"] | None
    validity: Literal["DAY", "IOC", "TTL"] | None
    validity_ttl: int | None
    tag: str | None


class OrderOut(BaseModel):
    """One order as ``GET /orders/{order_id}`` shows it (current state and every fill)."""

    client_order_id: str | None
    order_id: str
    symbol: str
    instrument_token: int
    side: Literal["buy", "sell"]
    type: Literal["limit", "market", "stop", "stop_limit"]
    time_in_force: Literal["GTC", "IOC", "FOK", "DAY"]
    post_only: bool
    price: Decimal | None
    trigger_price: Decimal | None
    quantity: Decimal
    status: Literal[
        "open", "partially_filled", "filled", "cancelled", "expired", "rejected", "pending_trigger"
    ]
    filled_quantity: Decimal
    remaining_quantity: Decimal
    average_price: Decimal | None
    fills: list[FillOut]
    reason: str | None
    batch_id: str | None
    created_ns: int
    updated_ns: int
    created_at: str
    updated_at: str
    kite: KiteTermsOut | None = None
    error: ErrorOut | None = None


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class AccountFillOut(BaseModel):
    """One of the account's fills (``GET /fills``): its half of a trade."""

    trade_id: str
    order_id: str
    client_order_id: str | None
    symbol: str
    instrument_token: int
    side: Literal["buy", "sell"]
    price: Decimal
    quantity: Decimal
    liquidity: Literal["maker", "taker"]
    time: str
    ts_ns: int


class FillPage(BaseModel):
    items: list[AccountFillOut]
    next_cursor: str | None


class CancelAllOut(BaseModel):
    cancelled: int
    items: list[OrderOut]


class BatchSummary(BaseModel):
    batch_id: str
    created_ns: int
    accepted: int
    rejected: int


class BatchPage(BaseModel):
    items: list[BatchSummary]
    next_cursor: str | None


class InstrumentOut(BaseModel):
    instrument_token: int
    exchange_token: int
    exchange: str
    tradingsymbol: str
    symbol: str
    name: str
    instrument_type: str
    segment: str
    tick_size: Decimal
    lot_size: Decimal
    expiry: str | None
    strike: Decimal
    last_price: Decimal
    status: Literal["active", "halted", "delisted", "expired"]
    updated_at: str | None


class InstrumentPage(BaseModel):
    items: list[InstrumentOut]
    next_cursor: str | None


class RefreshOut(BaseModel):
    refreshed: bool
    instruments: int
    counts: dict[str, int]
    last_refresh: str | None
    age_seconds: float | None
    duration_seconds: float | None


class LevelOut(BaseModel):
    price: Decimal
    quantity: Decimal
    orders: int


class OrderBookOut(BaseModel):
    symbol: str
    instrument_token: int
    seq: int
    bids: list[LevelOut]
    asks: list[LevelOut]


class TradeOut(BaseModel):
    trade_id: str
    price: Decimal
    quantity: Decimal
    taker_side: Literal["buy", "sell"]
    executed_at: str
    ts_ns: int


class TradePage(BaseModel):
    symbol: str
    items: list[TradeOut]
    next_cursor: str | None


class DayStatsOut(BaseModel):
    """The exchange's trading day so far (its calendar's zone; UTC without a calendar)."""

    trading_day: str
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None
    volume: Decimal
    trade_count: int


class StatsOut(BaseModel):
    symbol: str
    instrument_token: int
    status: Literal["active", "halted", "delisted", "expired"]
    seq: int
    orders: int
    pending_stops: int
    bid_levels: int
    ask_levels: int
    bid_quantity: Decimal
    ask_quantity: Decimal
    best_bid: Decimal | None
    best_ask: Decimal | None
    volume: Decimal
    trade_count: int
    last_price: Decimal | None
    book_hash: str | None
    day: DayStatsOut


class CandleOut(BaseModel):
    start: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int


class CandlePage(BaseModel):
    symbol: str
    instrument_token: int
    interval: str
    items: list[CandleOut]
    next_cursor: str | None


class SubscriptionOut(BaseModel):
    instrument_token: int
    symbol: str | None
    mode: Literal["ltp", "quote", "full"]
    status: Literal["active", "paused"]
    created_at: str
    updated_at: str
    updated_by: str | None
    deleted: bool | None = None  # true in the answer to DELETE


class SubscriptionPage(BaseModel):
    items: list[SubscriptionOut]
    next_cursor: str | None


class WebhookOut(BaseModel):
    """A webhook endpoint; ``secret`` only when it is created or its secret rotated."""

    id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str
    secret: str | None = None


class WebhookPage(BaseModel):
    items: list[WebhookOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None
    error: str | None
    duration_ms: float | None


class DeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    event_type: str
    order_id: str | None
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    created_at: str
    next_attempt_at: str | None
    delivered_at: str | None
    last_status_code: int | None
    last_error: str | None
    attempts: list[AttemptOut]
    payload: dict[str, Any] | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class RegistryHealthOut(BaseModel):
    status: Literal["ok", "loading", "stale"]
    cached_instruments: int
    last_refresh: str | None
    age_seconds: float | None


class DependenciesOut(BaseModel):
    """Each dependency's check; components (registry, journal, webhooks) report a section."""

    database: str
    redis: str
    instrument_registry: RegistryHealthOut | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "down"]
    environment: str
    version: str
    ticker: dict[str, Any] | None = None
    dependencies: DependenciesOut


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, Any]


class LiveOut(BaseModel):
    status: Literal["ok"]


class RateLimitOut(BaseModel):
    requests_per_second: float
    burst: int


class LimitsOut(BaseModel):
    max_batch_orders: int
    max_order_quantity: Decimal
    max_open_orders: int
    ws_max_instruments_per_connection: int
    ws_max_connections_per_key: int


class MeOut(BaseModel):
    """``GET /me``: the presented key (never the key itself, only its short fingerprint)."""

    account: str
    scopes: list[Literal["read", "trade", "admin"]]
    fingerprint: str
    rate_limit: RateLimitOut
    limits: LimitsOut


class PositionDayOut(BaseModel):
    trading_day: str | None
    buy_quantity: str
    buy_value: str
    sell_quantity: str
    sell_value: str


class PositionOut(BaseModel):
    """A position (``GET /positions``): decimals as strings; P&L by weighted average cost."""

    symbol: str
    instrument_token: int
    quantity: str
    overnight_quantity: str
    day_quantity: str
    average_price: str | None
    last_price: str | None
    buy_quantity: str
    buy_value: str
    buy_price: str | None
    sell_quantity: str
    sell_value: str
    sell_price: str | None
    realised_pnl: str
    unrealised_pnl: str
    pnl: str
    day: PositionDayOut


class PositionPage(BaseModel):
    items: list[PositionOut]
    next_cursor: str | None


class SessionTimesOut(BaseModel):
    pre_open: str | None
    open: str
    close: str
    post_close: str | None


class ExchangeDayOut(BaseModel):
    exchange: str
    calendar: str
    timezone: str
    state: str  # open | pre_open | post_close | closed
    trading_day: str
    always_open: bool
    session: SessionTimesOut | None
    holiday: bool
    next_open: str | None
    next_close: str | None


class CalendarOut(BaseModel):
    now: str
    source: str
    items: list[ExchangeDayOut]
    next_cursor: str | None
