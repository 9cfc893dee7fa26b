"""Kite's account routes: profile, margins, positions and holdings.

Margins model: each account has one ``cash`` figure per segment (``KITE_CASH`` by default,
``"cash"`` in a key file overrides it for that key's account). What the account's working
orders would cost if they filled (price, else trigger price, else the instrument's last
price, times the remaining quantity; buys and sells alike) is ``utilised.debits``;
``net`` is cash less that. Instruments on MCX count in the ``commodity`` segment, the rest
in ``equity``.

Positions and holdings come from the account's positions, which another component owns
(``positions_of``: the one adapter to point at it); until then both are empty lists.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.errors import ValidationFailed
from app.services.instruments.snapshot import RegistrySnapshot, SnapshotSource
from app.services.orders.reads import OrderReads

SEGMENTS = ("equity", "commodity")
PRODUCTS = ["CNC", "MIS", "NRML"]
ORDER_TYPES = ["MARKET", "LIMIT", "SL", "SL-M"]
_PAGE = 1000


def segment_of(exchange: str) -> str:
    return "commodity" if exchange == "MCX" else "equity"


def positions_of(account: str) -> dict[str, list[dict[str, Any]]]:
    """The account's positions in Kite's shape (``net`` and ``day``). The positions come
    from the trading-day component when the two are merged; this adapter answers with no
    positions on its own."""
    return {"net": [], "day": []}


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
    def __init__(self, *, reads: OrderReads, registry: SnapshotSource) -> None:
        self._reads = reads
        self._registry = registry

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
