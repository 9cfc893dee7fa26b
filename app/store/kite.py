"""What the Kite adapter reads of the journal: the account's trades, each with the account's
own order (its id, side and ``client_order_id``), oldest first (a trade between two orders of
the account is two rows, one per order); and the working orders that carry a Kite TTL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_, select

from app.store.database import Database
from app.store.journal import orders, trades


async def account_trades(
    database: Database, account: str, *, order_id: int | None = None, limit: int = 10_000
) -> list[Any]:
    """Rows of ``trades`` with ``mine`` (the account's order id), ``side`` and
    ``client_order_id`` of that order; one order's trades when ``order_id`` is given."""
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
        orders.c.client_order_id,
    ).select_from(joined)
    if order_id is not None:
        query = query.where(orders.c.order_id == order_id)
    query = query.order_by(trades.c.ts_ns.desc(), trades.c.trade_id.desc()).limit(limit)
    async with database.engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    rows.reverse()
    return rows


_WORKING = ("open", "partially_filled", "pending_trigger")


async def working_ttl_orders(database: Database) -> list[Any]:
    """Every account's working orders placed with Kite's ``TTL`` validity (their
    ``client_order_id`` says so): ``account``, ``order_id``, ``client_order_id``,
    ``created_ns``."""
    query = select(
        orders.c.account, orders.c.order_id, orders.c.client_order_id, orders.c.created_ns
    ).where(orders.c.status.in_(_WORKING), orders.c.client_order_id.like("kite:%:TTL:%"))
    async with database.engine.connect() as conn:
        return list((await conn.execute(query)).all())
