"""Kite's shapes of our orders and trades: names and values mapped, nothing recomputed.

``kite_order`` takes an order as our API renders it (``app.services.render``, or an
order update of ``/ws/orders``: the same field names) and maps it; the history is built from
its stored history (``app.services.kite.history``).

Kite's product, validity (with its TTL) and tag are columns of the order (``kite`` in our
renderings of it, ``app.services.render.kite_terms``), stored with the order in the commit that
placed it. Orders placed through our own API have none (``default_meta``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.services.instruments.model import Instrument
from app.services.kite.zones import kite_time

ORDER_TYPES = {"limit": "LIMIT", "market": "MARKET", "stop_limit": "SL", "stop": "SL-M"}
OUR_ORDER_TYPES = {kite: ours for ours, kite in ORDER_TYPES.items()}
STATUSES = {
    "open": "OPEN",
    "partially_filled": "OPEN",
    "pending_trigger": "TRIGGER PENDING",
    "filled": "COMPLETE",
    "cancelled": "CANCELLED",
    "expired": "CANCELLED",
    "rejected": "REJECTED",
}
VALIDITIES = {"DAY": "DAY", "GTC": "DAY", "IOC": "IOC", "FOK": "IOC"}
_MESSAGES = {
    "USER_CANCELLED": None,
    "DAY_EXPIRED": "Order expired at the end of the session",
    "IOC_UNFILLED": "IOC order's unfilled quantity cancelled",
    "NO_LIQUIDITY": "No liquidity to match the market order",
    "POST_ONLY_WOULD_TAKE": "Post-only order would have taken liquidity",
    "SELF_TRADE_PREVENTION": "Cancelled by self-trade prevention",
    "CANCEL_ON_DISCONNECT": "Cancelled when the order stream disconnected",
    "TTL_EXPIRED": "Order expired at the end of its TTL",
}


def number(text: str | None) -> int | float:
    """A decimal string as Kite's JSON number (0 for none)."""
    if text is None:
        return 0
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class KiteOrderMeta:
    variety: str
    product: str
    validity: str
    validity_ttl: int | None
    tag: str | None


def order_meta(order: Mapping[str, Any], instrument: Instrument) -> KiteOrderMeta:
    """The Kite terms of an order as our API renders it (its ``kite`` field)."""
    terms = order.get("kite")
    if not terms:
        return default_meta(instrument)
    return KiteOrderMeta(
        "regular", terms["product"], terms["validity"], terms["validity_ttl"], terms["tag"]
    )


def default_meta(instrument: Instrument) -> KiteOrderMeta:
    """For an order placed through our own API: the product Kite would default to."""
    product = "CNC" if instrument.exchange in ("NSE", "BSE") else "NRML"
    return KiteOrderMeta("regular", product, "DAY", None, None)


def status_message(order: Mapping[str, Any]) -> str | None:
    reason = order.get("reason")
    if not reason:
        return None
    return _MESSAGES.get(reason, reason)


def kite_order(instrument: Instrument, order: Mapping[str, Any], account: str) -> dict[str, Any]:
    meta = order_meta(order, instrument)
    exchange = instrument.exchange
    quantity = number(order["quantity"])
    filled = number(order["filled_quantity"])
    remaining = number(order["remaining_quantity"])
    status = STATUSES.get(order["status"], order["status"].upper())
    pending = remaining if status in ("OPEN", "TRIGGER PENDING") else 0
    placed, updated = order.get("created_ns"), order.get("updated_ns")
    return {
        "account_id": account,
        "placed_by": account,
        "order_id": order["order_id"],
        "exchange_order_id": order["order_id"],
        "parent_order_id": None,
        "status": status,
        "status_message": status_message(order),
        "status_message_raw": order.get("reason"),
        "order_timestamp": kite_time(placed, exchange),
        "exchange_update_timestamp": kite_time(updated, exchange),
        "exchange_timestamp": kite_time(placed, exchange),
        "variety": meta.variety,
        "modified": bool(order.get("modified")),
        "exchange": exchange,
        "tradingsymbol": instrument.tradingsymbol,
        "instrument_token": instrument.instrument_token,
        "order_type": ORDER_TYPES.get(order["type"], order["type"].upper()),
        "transaction_type": order["side"].upper(),
        "validity": meta.validity,
        "validity_ttl": meta.validity_ttl or 0,
        "product": meta.product,
        "quantity": quantity,
        "disclosed_quantity": 0,
        "price": number(order.get("price")),
        "trigger_price": number(order.get("trigger_price")),
        "average_price": number(order.get("average_price")),
        "filled_quantity": filled,
        "pending_quantity": pending,
        "cancelled_quantity": quantity - filled if status == "CANCELLED" else 0,
        "market_protection": 0,
        "meta": {},
        "tag": meta.tag,
        "tags": [meta.tag] if meta.tag else [],
        "guid": order.get("client_order_id"),
    }


def kite_trade(instrument: Instrument, row: Any) -> dict[str, Any]:
    """One of the account's trades (a row of ``app.store.kite.account_trades``) in Kite's
    tradebook shape."""
    order_id, side = row.mine, row.side
    product = row.product or default_meta(instrument).product
    when = kite_time(row.ts_ns, instrument.exchange)
    return {
        "trade_id": str(row.trade_id),
        "order_id": str(order_id),
        "exchange_order_id": str(order_id),
        "tradingsymbol": instrument.tradingsymbol,
        "exchange": instrument.exchange,
        "instrument_token": instrument.instrument_token,
        "product": product,
        "average_price": number(instrument.ticks_to_price(row.price)),
        "quantity": number(instrument.lots_to_quantity(row.quantity)),
        "fill_timestamp": when,
        "order_timestamp": when,
        "exchange_timestamp": when,
        "transaction_type": side.upper(),
    }
