"""Orders and fills as the API shows them: integers back to decimal strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.services.instrument import Instrument, decimal_text
from app.services.orders.records import REJECTED, Fill, OrderRecord
from app.services.webhooks.events import iso_time

_AVERAGE_DIGITS = 8


def average_price(instrument: Instrument, fills: list[Fill], filled: int) -> str | None:
    if not fills or filled <= 0:
        return None
    value = sum(fill.price * fill.quantity for fill in fills)
    if value % filled == 0:
        return instrument.ticks_to_price(value // filled)
    exact = Decimal(value) * instrument.tick_size / Decimal(filled)
    return decimal_text(round(exact, instrument.tick_digits + _AVERAGE_DIGITS))


def render_fill(instrument: Instrument, fill: Fill) -> dict[str, Any]:
    return {
        "trade_id": str(fill.trade_id),
        "price": instrument.ticks_to_price(fill.price),
        "quantity": instrument.lots_to_quantity(fill.quantity),
        "liquidity": fill.liquidity,
    }


def render_account_fill(instrument: Instrument, row: Any) -> dict[str, Any]:
    """One of the account's fills (``GET /fills``), from a row of ``fills.list_fills``."""
    return {
        "trade_id": str(row.trade_id),
        "order_id": str(row.order_id),
        "client_order_id": row.client_order_id,
        "symbol": instrument.symbol,
        "instrument_token": row.instrument_token,
        "side": row.side,
        "price": instrument.ticks_to_price(row.price),
        "quantity": instrument.lots_to_quantity(row.quantity),
        "liquidity": row.liquidity,
        "time": iso_time(row.ts_ns),
        "ts_ns": row.ts_ns,
    }


def render_order(instrument: Instrument, record: OrderRecord) -> dict[str, Any]:
    ticks_to_price = instrument.ticks_to_price
    lots = instrument.lots_to_quantity
    body: dict[str, Any] = {
        "client_order_id": record.client_order_id,
        "order_id": str(record.order_id),
        "symbol": instrument.symbol,
        "instrument_token": record.instrument_token,
        "side": record.side,
        "type": record.order_type,
        "time_in_force": record.time_in_force,
        "post_only": record.post_only,
        "price": None if record.price is None else ticks_to_price(record.price),
        "trigger_price": (
            None if record.trigger_price is None else ticks_to_price(record.trigger_price)
        ),
        "quantity": lots(record.quantity),
        "status": record.status,
        "filled_quantity": lots(record.filled),
        "remaining_quantity": lots(record.remaining),
        "average_price": average_price(instrument, record.fills, record.filled),
        "fills": [render_fill(instrument, fill) for fill in record.fills],
        "reason": record.reason,
        "batch_id": record.batch_id,
        "created_ns": record.created_ns,
        "updated_ns": record.updated_ns,
        # The same instants as the webhooks show them, for clients that read dates.
        "created_at": iso_time(record.created_ns),
        "updated_at": iso_time(record.updated_ns),
    }
    if record.status == REJECTED:
        body["error"] = {"code": record.reason, "message": _REASONS.get(record.reason or "", "")}
    return body


def render_result(
    instrument: Instrument, record: OrderRecord, index: int, *, created: bool = True
) -> dict[str, Any]:
    """The order result of a batch (README, "Orders": an order result): the outcome, not the order.

    ``created`` is false when a repeated ``client_order_id`` returned an earlier order."""
    lots = instrument.lots_to_quantity
    fills = record.fills
    result: dict[str, Any] = {
        "index": index,
        "client_order_id": record.client_order_id,
        "order_id": str(record.order_id),
        "created": created,
        "status": record.status,
        "filled_quantity": lots(record.filled),
        "remaining_quantity": lots(record.remaining),
        "average_price": average_price(instrument, fills, record.filled) if fills else None,
        "fills": [render_fill(instrument, fill) for fill in fills] if fills else [],
    }
    if record.reason is not None:
        result["reason"] = record.reason
        if record.status == REJECTED:
            result["error"] = {"code": record.reason, "message": _REASONS.get(record.reason, "")}
    return result


def render_reject(
    index: int | None, client_order_id: str | None, code: str, message: str
) -> dict[str, Any]:
    """A result for an order refused before it reached a book (it has no order id)."""
    return {
        "index": index,
        "client_order_id": client_order_id,
        "order_id": None,
        "created": False,
        "status": REJECTED,
        "filled_quantity": "0",
        "remaining_quantity": "0",
        "average_price": None,
        "fills": [],
        "error": {"code": code, "message": message},
    }


_REASONS = {
    "POST_ONLY_WOULD_TAKE": "a post-only order would have taken liquidity",
    "FOK_NOT_FILLABLE": "a fill-or-kill order could not be filled completely",
    "NO_LIQUIDITY": "no liquidity to match a market order",
    "INVALID_POST_ONLY": "post_only is allowed on GTC/DAY limit orders only",
    "INVALID_PRICE": "invalid price",
    "INVALID_TRIGGER_PRICE": "invalid trigger price",
    "INVALID_QUANTITY": "invalid quantity",
    "DUPLICATE_ORDER_ID": "duplicate order id",
}
