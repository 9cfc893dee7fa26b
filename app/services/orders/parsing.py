"""Order requests: a fast hand-written parser for the hot path, and pydantic models for docs.

A batch is parsed order by order so that one malformed order is rejected on its own (with
``VALIDATION_ERROR``) while its neighbours proceed: the batch answers 200 whenever its
envelope is well formed. The pydantic models below describe the same shape for OpenAPI;
``tests/services/orders/test_parsing.py`` keeps the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from app.engine import OrderType, SelfTradePrevention, Side, TimeInForce
from app.errors import BadRequest, PayloadTooLarge, ValidationFailed
from app.services.orders.errors import OrderReject

MAX_CLIENT_ORDER_ID = 64
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
_CLIENT_ORDER_ID = re.compile(CLIENT_ORDER_ID_PATTERN)
_SYMBOL_MAX = 64
_NUMBER_MAX = 32

_SIDES = {s.value: s for s in Side}
_TYPES = {t.value: t for t in OrderType}
_TIFS = {t.value: t for t in TimeInForce}
_STPS = {s.value: s for s in SelfTradePrevention}
_FIELDS = frozenset(
    {
        "symbol",
        "side",
        "type",
        "quantity",
        "price",
        "trigger_price",
        "time_in_force",
        "post_only",
        "client_order_id",
        "stp",
    }
)


class OrderInvalid(OrderReject):
    """One order is malformed; ``code`` is the per-order reject code."""


@dataclass(slots=True)
class OrderRequest:
    symbol: str
    side: Side
    order_type: OrderType
    quantity: str
    price: str | None
    trigger_price: str | None
    time_in_force: TimeInForce
    post_only: bool
    client_order_id: str | None
    stp: SelfTradePrevention


def _number(item: dict[str, Any], name: str, required: bool) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise OrderInvalid("VALIDATION_ERROR", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise OrderInvalid("VALIDATION_ERROR", f"{name} must be a decimal string")
    text = str(value)
    if len(text) > _NUMBER_MAX:
        code = "INVALID_QUANTITY" if name == "quantity" else "INVALID_PRICE"
        raise OrderInvalid(code, f"{name} is too long")
    return text


def _choice(item: dict[str, Any], name: str, choices: dict[str, Any], default: Any) -> Any:
    value = item.get(name)
    if value is None:
        if default is None:
            raise OrderInvalid("VALIDATION_ERROR", f"{name} is required")
        return default
    if isinstance(value, str):
        found = choices.get(value) or choices.get(value.lower()) or choices.get(value.upper())
        if found is not None:
            return found
    allowed = ", ".join(choices)
    raise OrderInvalid("VALIDATION_ERROR", f"{name} must be one of {allowed}")


def parse_order(item: Any) -> OrderRequest:
    """Validate one order's shape (not its instrument, grid or risk: the service does those)."""
    if not isinstance(item, dict):
        raise OrderInvalid("VALIDATION_ERROR", "an order must be a JSON object")
    unknown = item.keys() - _FIELDS
    if unknown:
        raise OrderInvalid("VALIDATION_ERROR", f"unknown field {sorted(unknown)[0]!r}")
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol or len(symbol) > _SYMBOL_MAX:
        raise OrderInvalid("VALIDATION_ERROR", "symbol must be a non-empty string")
    order_type = _choice(item, "type", _TYPES, OrderType.LIMIT)
    needs_price = order_type is OrderType.LIMIT or order_type is OrderType.STOP_LIMIT
    needs_trigger = order_type is OrderType.STOP or order_type is OrderType.STOP_LIMIT
    price = _number(item, "price", needs_price)
    trigger = _number(item, "trigger_price", needs_trigger)
    if price is not None and not needs_price:
        raise OrderInvalid("VALIDATION_ERROR", f"price is not allowed on {order_type.value} orders")
    if trigger is not None and not needs_trigger:
        raise OrderInvalid(
            "VALIDATION_ERROR", f"trigger_price is not allowed on {order_type.value} orders"
        )
    post_only = item.get("post_only", False)
    if not isinstance(post_only, bool):
        raise OrderInvalid("VALIDATION_ERROR", "post_only must be true or false")
    client_order_id = item.get("client_order_id")
    if client_order_id is not None and (
        not isinstance(client_order_id, str) or not _CLIENT_ORDER_ID.fullmatch(client_order_id)
    ):
        raise OrderInvalid(
            "VALIDATION_ERROR", "client_order_id must be 1-64 characters of A-Za-z0-9._:-"
        )
    return OrderRequest(
        symbol=symbol,
        side=_choice(item, "side", _SIDES, None),
        order_type=order_type,
        quantity=_number(item, "quantity", True),  # type: ignore[arg-type]
        price=price,
        trigger_price=trigger,
        time_in_force=_choice(item, "time_in_force", _TIFS, TimeInForce.GTC),
        post_only=post_only,
        client_order_id=client_order_id,
        stp=_choice(item, "stp", _STPS, SelfTradePrevention.CANCEL_NEWEST),
    )


_BATCH_FIELDS = frozenset({"orders", "atomic"})


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("request body is not valid JSON", code="INVALID_JSON") from exc


def parse_single(body: bytes) -> Any:
    """``POST /orders``: the one order, as a batch item (``parse_order`` checks it there, so
    a single order and a batch's order are judged by the same code)."""
    return _json(body)


def parse_batch(body: bytes, max_orders: int) -> tuple[list[Any], bool]:
    """The batch envelope: ``{"orders": [...], "atomic": false}`` (orders parsed one by one)."""
    payload = _json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("orders"), list):
        raise ValidationFailed('the body must be {"orders": [...], "atomic": false}')
    unknown = payload.keys() - _BATCH_FIELDS
    if unknown:
        raise ValidationFailed(f"unknown field {sorted(unknown)[0]!r}")
    items: list[Any] = payload["orders"]
    atomic = payload.get("atomic", False)
    if not isinstance(atomic, bool):
        raise ValidationFailed("atomic must be true or false")
    if not items:
        raise ValidationFailed("a batch needs at least one order", code="EMPTY_BATCH")
    if len(items) > max_orders:
        raise PayloadTooLarge(f"a batch holds at most {max_orders} orders", code="BATCH_TOO_LARGE")
    return items, atomic


# --- OpenAPI description of the same shapes -------------------------------------------------

Decimal = Field(pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=_NUMBER_MAX, examples=["30000.5"])


class OrderIn(BaseModel):
    """One order. Prices and quantities are decimal strings on the instrument's grid."""

    symbol: str = Field(max_length=_SYMBOL_MAX, examples=["NSE:INFY"])
    side: Literal["buy", "sell"]
    type: Literal["limit", "market", "stop", "stop_limit"] = "limit"
    quantity: str = Decimal
    price: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=_NUMBER_MAX)
    trigger_price: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=_NUMBER_MAX)
    time_in_force: Literal["GTC", "IOC", "FOK", "DAY"] = "GTC"
    post_only: bool = False
    client_order_id: str | None = Field(None, pattern=_CLIENT_ORDER_ID.pattern)
    stp: Literal["cancel_newest", "cancel_oldest", "cancel_both", "none"] = "cancel_newest"


class BatchIn(BaseModel):
    orders: list[OrderIn] = Field(min_length=1, description="at most MAX_BATCH_ORDERS")
    atomic: bool = False


class AmendIn(BaseModel):
    """New remaining quantity and/or new limit price (decimal strings)."""

    quantity: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=_NUMBER_MAX)
    price: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?$", max_length=_NUMBER_MAX)


class FillOut(BaseModel):
    trade_id: str
    price: str
    quantity: str
    liquidity: Literal["maker", "taker"]


class ErrorOut(BaseModel):
    code: str
    message: str


class OrderResultOut(BaseModel):
    """One order's outcome in a batch (``status`` ``unknown`` only through a gateway)."""

    index: int | None = None
    client_order_id: str | None
    order_id: str | None
    created: bool | None = Field(
        None, description="false when a used client_order_id returned the original order"
    )
    status: str
    filled_quantity: str
    remaining_quantity: str
    average_price: str | None
    fills: list[FillOut]
    reason: str | None = None
    error: ErrorOut | None = None


class BatchOut(BaseModel):
    batch_id: str
    accepted: int
    rejected: int
    unknown: int | None = None
    results: list[OrderResultOut]
