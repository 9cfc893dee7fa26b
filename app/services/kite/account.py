"""Kite's account routes: profile, margins, positions and holdings.

Margins model: each account has one ``cash`` figure per segment (``KITE_CASH`` by default,
``"cash"`` in a key file overrides it for that key's account). What the account's working
orders would cost if they filled (price, else trigger price, else the instrument's last
price, times the remaining quantity; buys and sells alike) is ``utilised.debits``;
``net`` is cash less that. Instruments on MCX count in the ``commodity`` segment, the rest
in ``equity``.

Positions come from our positions (``app.services.positions``), mapped to Kite's shape
(``kite_position``); holdings are an empty list (every position is shown under positions).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.errors import ValidationFailed
from app.services.instruments.model import Instrument
from app.services.instruments.snapshot import RegistrySnapshot, SnapshotSource
from app.services.kite.shapes import number
from app.services.orders.reads import OrderReads
from app.services.positions.reads import PositionReads

SEGMENTS = ("equity", "commodity")
PRODUCTS = ["CNC", "MIS", "NRML"]
ORDER_TYPES = ["MARKET", "LIMIT", "SL", "SL-M"]
_PAGE = 1000


def segment_of(exchange: str) -> str:
    return "commodity" if exchange == "MCX" else "equity"


def kite_position(instrument: Instrument, p: dict[str, Any], *, day: bool) -> dict[str, Any]:
    """One of our positions (``GET /positions``'s item) in Kite's shape: the net position,
    or (``day``) what was bought and sold today. Product ``NRML``: our positions are per
    account and instrument, not per product; close price, M2M split and multiplier are
    Kite's defaults."""
    today = p["day"]
    buy_quantity = number(today["buy_quantity"] if day else p["buy_quantity"])
    sell_quantity = number(today["sell_quantity"] if day else p["sell_quantity"])
    buy_value = number(today["buy_value"] if day else p["buy_value"])
    sell_value = number(today["sell_value"] if day else p["sell_value"])
    pnl = number(p["pnl"])
    return {
        "tradingsymbol": instrument.tradingsymbol,
        "exchange": instrument.exchange,
        "instrument_token": instrument.instrument_token,
        "product": "NRML",
        "quantity": number(p["day_quantity"] if day else p["quantity"]),
        "overnight_quantity": 0 if day else number(p["overnight_quantity"]),
        "multiplier": 1,
        "average_price": number(p["average_price"]),
        "close_price": 0,
        "last_price": number(p["last_price"]),
        "value": sell_value - buy_value,
        "pnl": pnl,
        "m2m": pnl,
        "unrealised": number(p["unrealised_pnl"]),
        "realised": number(p["realised_pnl"]),
        "buy_quantity": buy_quantity,
        "buy_price": _price(buy_value, buy_quantity),
        "buy_value": buy_value,
        "buy_m2m": buy_value,
        "sell_quantity": sell_quantity,
        "sell_price": _price(sell_value, sell_quantity),
        "sell_value": sell_value,
        "sell_m2m": sell_value,
        "day_buy_quantity": number(today["buy_quantity"]),
        "day_buy_price": _price(number(today["buy_value"]), number(today["buy_quantity"])),
        "day_buy_value": number(today["buy_value"]),
        "day_sell_quantity": number(today["sell_quantity"]),
        "day_sell_price": _price(number(today["sell_value"]), number(today["sell_quantity"])),
        "day_sell_value": number(today["sell_value"]),
    }


def _price(value: float, quantity: float) -> float:
    return 0 if not quantity else round(value / quantity, 8)


def profile(account: str, snapshot: RegistrySnapshot) -> dict[str, Any]:
    return {
        "user_id": account,
        "user_name": account,
        "user_shortname": account,
        "user_type": "individual",
        "email": "",
        "avatar_url": None,
        "broker": "ticker-service",
        "exchanges": sorted({i.exchange for i in snapshot}),
        "products": PRODUCTS,
        "order_types": ORDER_TYPES,
        "meta": {"demat_consent": ""},
    }


def _segment(cash: Decimal, used: Decimal) -> dict[str, Any]:
    cash_f, used_f = float(cash), float(used)
    return {
        "enabled": True,
        "net": round(cash_f - used_f, 8),
        "available": {
            "adhoc_margin": 0,
            "cash": cash_f,
            "opening_balance": cash_f,
            "live_balance": round(cash_f - used_f, 8),
            "collateral": 0,
            "intraday_payin": 0,
        },
        "utilised": {
            "debits": used_f,
            "exposure": 0,
            "m2m_realised": 0,
            "m2m_unrealised": 0,
            "option_premium": 0,
            "payout": 0,
            "span": 0,
            "holding_sales": 0,
            "turnover": 0,
            "liquid_collateral": 0,
            "stock_collateral": 0,
            "delivery": 0,
        },
    }


class KiteAccount:
    def __init__(
        self, *, reads: OrderReads, registry: SnapshotSource, positions: PositionReads
    ) -> None:
        self._reads = reads
        self._registry = registry
        self._positions = positions

    async def positions(self, account: str) -> dict[str, list[dict[str, Any]]]:
        """``GET /portfolio/positions``: ``net`` (every position the account holds or held)
        and ``day`` (those traded today), from our positions (weighted average cost)."""
        snapshot = self._registry.snapshot
        net: list[dict[str, Any]] = []
        day: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self._positions.list_positions(account, limit=_PAGE, cursor=cursor)
            for item in page["items"]:
                instrument = snapshot.instrument(item["instrument_token"])
                net.append(kite_position(instrument, item, day=False))
                if item["day"]["trading_day"] is not None and (
                    number(item["day"]["buy_quantity"]) or number(item["day"]["sell_quantity"])
                ):
                    day.append(kite_position(instrument, item, day=True))
            cursor = page["next_cursor"]
            if cursor is None:
                return {"net": net, "day": day}

    async def _used(self, account: str) -> dict[str, Decimal]:
        used = dict.fromkeys(SEGMENTS, Decimal(0))
        snapshot = self._registry.snapshot
        cursor = None
        while True:
            page = await self._reads.list_orders(
                account, status="working", symbol=None, limit=_PAGE, cursor=cursor
            )
            for order in page["items"]:
                instrument = snapshot.get(order["instrument_token"])
                if instrument is None:
                    continue
                price = order["price"] or order["trigger_price"]
                value = Decimal(price) if price else instrument.last_price
                used[segment_of(instrument.exchange)] += value * Decimal(
                    order["remaining_quantity"]
                )
            cursor = page["next_cursor"]
            if cursor is None:
                return used

    async def margins(self, account: str, cash: Decimal, segment: str | None) -> dict[str, Any]:
        if segment is not None and segment not in SEGMENTS:
            raise ValidationFailed(f"invalid segment {segment[:20]!r}; equity or commodity")
        used = await self._used(account)
        if segment is not None:
            return _segment(cash, used[segment])
        return {name: _segment(cash, used[name]) for name in SEGMENTS}
