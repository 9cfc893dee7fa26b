"""Response shapes for OpenAPI (and for the schemathesis run that checks every response).

Documentation only: the routes build plain dicts and render them with orjson, so these
models cost nothing per request. They list the fields clients rely on; more may be added
(DESIGN.md: add fields freely), so none of them forbids extra properties.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.services.orders.requests import ErrorOut, FillOut

Decimal = str  # a decimal string, e.g. "1875.4"


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
    error: ErrorOut | None = None


class OrderPage(BaseModel):
    items: list[OrderOut]
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
    status: Literal["active", "halted", "delisted"]
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


class StatsOut(BaseModel):
    symbol: str
    instrument_token: int
    status: Literal["active", "halted", "delisted"]
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
