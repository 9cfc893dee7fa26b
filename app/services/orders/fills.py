"""The account's own fills (``GET /fills``), newest first, read from the journal.

A trade is a fill for each side's account: its maker order's and its taker order's. Both
halves are read by joining ``trades`` to the account's ``orders`` (through the indexed
``maker_order_id`` / ``taker_order_id``), so a fill carries its order's ``client_order_id``
and side. A self-trade (``stp: none``) is two fills of one trade, told apart by liquidity.

Newest first is by execution time, then trade id, then liquidity: trade ids are unique but
counted per shard, so across matchers only the time orders them. The cursor holds that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, literal, or_, select, true, union_all
from sqlalchemy.sql import ColumnElement, Select

from app.errors import ValidationFailed
from app.services.cursors import decode_cursor, encode_cursor
from app.store.database import Database
from app.store.journal import orders, trades

_LIQUIDITY = ("maker", "taker")


@dataclass(frozen=True, slots=True)
class FillFilter:
    account: str
    instrument_token: int | None = None
    start_ns: int | None = None  # inclusive
    end_ns: int | None = None  # exclusive


def _after(cursor: str | None) -> tuple[int, int, str] | None:
    if cursor is None:
        return None
    ts_ns, trade_id, liquidity = decode_cursor(cursor, 3, ints=2)
    if liquidity not in _LIQUIDITY:
        raise ValidationFailed("invalid cursor", code="INVALID_CURSOR")
    return ts_ns, trade_id, liquidity


def _part(wanted: FillFilter, liquidity: str, after: tuple[int, int, str] | None) -> Select[Any]:
    """One side's fills: the trades in which the account's order was maker (or taker)."""
    order_id = trades.c.maker_order_id if liquidity == "maker" else trades.c.taker_order_id
    query = (
        select(
            trades.c.ts_ns,
            trades.c.trade_id,
            literal(liquidity).label("liquidity"),
            trades.c.instrument_token,
            trades.c.price,
            trades.c.quantity,
            orders.c.order_id,
            orders.c.client_order_id,
            orders.c.side,
        )
        .select_from(trades.join(orders, orders.c.order_id == order_id))
        .where(orders.c.account == wanted.account)
    )
    if wanted.instrument_token is not None:
        query = query.where(trades.c.instrument_token == wanted.instrument_token)
    if wanted.start_ns is not None:
        query = query.where(trades.c.ts_ns >= wanted.start_ns)
    if wanted.end_ns is not None:
        query = query.where(trades.c.ts_ns < wanted.end_ns)
    if after is not None:
        ts_ns, trade_id, last = after
        # The liquidity tie-break is a constant of this part, so it is decided here.
        same_trade: ColumnElement[bool] = true() if liquidity < last else false()
        query = query.where(
            or_(
                trades.c.ts_ns < ts_ns,
                and_(
                    trades.c.ts_ns == ts_ns,
                    or_(
                        trades.c.trade_id < trade_id,
                        and_(trades.c.trade_id == trade_id, same_trade),
                    ),
                ),
            )
        )
    return query


async def list_fills(
    database: Database, wanted: FillFilter, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Rows (``ts_ns``, ``trade_id``, ``liquidity``, ``instrument_token``, ``price``,
    ``quantity``, ``order_id``, ``client_order_id``, ``side``), newest first."""
    after = _after(cursor)
    both = union_all(*(_part(wanted, liquidity, after) for liquidity in _LIQUIDITY)).subquery()
    query = (
        select(both)
        .order_by(both.c.ts_ns.desc(), both.c.trade_id.desc(), both.c.liquidity.desc())
        .limit(limit + 1)
    )
    async with database.engine.connect() as conn:
        rows = list(await conn.execute(query))
    more = len(rows) > limit
    del rows[limit:]
    last = rows[-1] if rows else None
    next_cursor = (
        encode_cursor(last.ts_ns, last.trade_id, last.liquidity) if more and last else None
    )
    return rows, next_cursor
