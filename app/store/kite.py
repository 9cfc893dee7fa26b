"""What the Kite adapter reads of the journal: the account's trades, each with the account's
own order (its id, side and Kite product), oldest first (a trade between two orders of the
account is two rows, one per order); an order's stored history; which orders were amended;
and the working orders that carry a Kite TTL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select

from app.store.database import Database
from app.store.journal import order_history, orders, trades


async def account_trades(
    database: Database, account: str, *, order_id: int | None = None, limit: int = 10_000
) -> list[Any]:
    """Rows of ``trades`` with ``mine`` (the account's order id), ``side`` and ``product`` of
    that order; one order's trades when ``order_id`` is given."""
    joined = trades.join(
        orders,
        and_(
            orders.c.account == account,
            or_(
                orders.c.order_id == trades.c.maker_order_id,
                orders.c.order_id == trades.c.taker_order_id,
            ),
        ),
    )
    query = select(
        trades,
        orders.c.order_id.label("mine"),
        orders.c.side,
        orders.c.product,
    ).select_from(joined)
    if order_id is not None:
        query = query.where(orders.c.order_id == order_id)
    query = query.order_by(trades.c.ts_ns.desc(), trades.c.trade_id.desc()).limit(limit)
    async with database.engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    rows.reverse()
    return rows


async def history_rows(database: Database, order_id: int) -> list[Any]:
    """The order's ``order_history`` rows, oldest first (the caller checked the order is
    the account's)."""
    query = (
        select(order_history)
        .where(order_history.c.order_id == order_id)
        .order_by(order_history.c.seq)
    )
    async with database.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def amended_orders(database: Database, order_ids: list[int], chunk: int = 500) -> set[int]:
    """Which of these orders were ever amended (Kite's ``modified``)."""
    found: set[int] = set()
    async with database.engine.connect() as conn:
        for start in range(0, len(order_ids), chunk):
            query = (
                select(order_history.c.order_id)
                .distinct()
                .where(
                    order_history.c.order_id.in_(order_ids[start : start + chunk]),
                    order_history.c.event == "amended",
                )
            )
            found.update((await conn.execute(query)).scalars())
    return found


_WORKING = ("open", "partially_filled", "pending_trigger")


async def working_ttl_orders(database: Database) -> list[Any]:
    """Every account's working orders placed with Kite's ``TTL`` validity: ``account``,
    ``order_id``, ``validity_ttl`` (minutes), ``created_ns``."""
    query = select(
        orders.c.account, orders.c.order_id, orders.c.validity_ttl, orders.c.created_ns
    ).where(
        orders.c.status.in_(_WORKING),
        orders.c.validity == "TTL",
        orders.c.validity_ttl.is_not(None),
    )
    async with database.engine.connect() as conn:
        return list((await conn.execute(query)).all())
