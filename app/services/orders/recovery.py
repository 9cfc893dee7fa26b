"""Rebuild the order service's memory from the journal: books, live orders, indexes.

Runs at start (before ``/health/ready`` opens) and after a journal failure. Books are rebuilt
from the live orders in priority order, the last trade price and the trade counters, so a
rebuilt book has the same ``state_hash`` as the one that was running when it was committed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select

from app.engine import (
    BookSnapshot,
    OrderState,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from app.services.orders.journal_queries import attach_fills
from app.services.orders.records import LIVE_STATUSES, PENDING_TRIGGER, OrderRecord
from app.services.orders.shard import Shard
from app.store.database import Database
from app.store.journal import orders, trades

_NEVER_REST = (OrderType.MARKET, OrderType.STOP)


@dataclass(slots=True)
class RecoveredState:
    snapshots: dict[int, BookSnapshot] = field(default_factory=dict)
    records: dict[int, OrderRecord] = field(default_factory=dict)
    client_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    last_order_id: int = 0
    last_seq: int = 0


def _state(record: OrderRecord) -> OrderState:
    return OrderState(
        order_id=record.order_id,
        account=record.account,
        side=Side(record.side),
        order_type=OrderType(record.order_type),
        time_in_force=TimeInForce(record.time_in_force),
        price=record.price,
        trigger_price=record.trigger_price,
        remaining=record.remaining,
        priority=record.priority or 0,
        filled=record.filled,
        post_only=record.post_only,
        stp=SelfTradePrevention(record.stp),
        pending=record.status == PENDING_TRIGGER,
    )


def _in_range(column: Any, shard: Shard) -> Any:
    return and_(column >= shard.id_base, column < shard.id_limit)


async def load_state(database: Database, shard: Shard | None = None) -> RecoveredState:
    """The live state of ``shard``'s instruments (every instrument by default)."""
    shard = shard or Shard()
    state = RecoveredState()
    async with database.engine.connect() as conn:
        last_order = select(func.max(orders.c.order_id)).where(_in_range(orders.c.order_id, shard))
        state.last_order_id = (await conn.scalar(last_order)) or shard.id_base
        state.last_seq = max(
            shard.id_base,
            (
                await conn.scalar(
                    select(func.max(orders.c.last_seq)).where(_in_range(orders.c.last_seq, shard))
                )
            )
            or 0,
            (
                await conn.scalar(
                    select(func.max(trades.c.trade_id)).where(_in_range(trades.c.trade_id, shard))
                )
            )
            or 0,
        )
        live = await conn.execute(
            select(orders)
            .where(orders.c.status.in_(LIVE_STATUSES))
            .order_by(orders.c.instrument_token, orders.c.priority)
        )
        for row in live:
            if not shard.owns(row.instrument_token):
                continue
            record = OrderRecord.from_row(row)
            state.records[record.order_id] = record
        ids = await conn.execute(
            select(orders.c.account, orders.c.client_order_id, orders.c.order_id).where(
                orders.c.client_order_id.is_not(None)
            )
        )
        state.client_ids = {(a, c): o for a, c, o in ids}

        counters = await conn.execute(
            select(
                trades.c.instrument_token,
                func.count(),
                func.sum(trades.c.quantity),
                func.max(trades.c.trade_id),
            ).group_by(trades.c.instrument_token)
        )
        last_trade: dict[int, int] = {}
        for token, count, volume, last_id in counters:
            if not shard.owns(token):
                continue
            state.snapshots[token] = BookSnapshot(
                token, trade_count=int(count), traded_volume=int(volume or 0)
            )
            last_trade[token] = last_id
        if last_trade:
            prices = await conn.execute(
                select(trades.c.instrument_token, trades.c.price).where(
                    trades.c.trade_id.in_(list(last_trade.values()))
                )
            )
            for token, price in prices:
                state.snapshots[token].last_price = price

        partly = {r.order_id: r for r in state.records.values() if r.filled > 0}
        await attach_fills(conn, partly)

    by_book: dict[int, list[OrderState]] = defaultdict(list)
    for record in state.records.values():
        if record.order_type in _NEVER_REST and record.status != PENDING_TRIGGER:
            continue  # market orders never rest; a live one cannot exist
        by_book[record.instrument_token].append(_state(record))
    for token, states in by_book.items():
        snapshot = state.snapshots.setdefault(token, BookSnapshot(token))
        snapshot.orders = states
    return state
