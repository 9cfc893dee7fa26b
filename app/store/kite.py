"""The account's trades as the Kite adapter lists them: each with the account's own order
(its id, side and ``client_order_id``), oldest first. A trade between two orders of the
account is two rows, one per order."""

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
