"""Kite Connect order attributes (``kite_orders``) and the account's trades with their times.

``kite_orders`` holds what a Kite order carries and ours does not (variety, product,
validity, TTL, tag), keyed by our ``order_id``; everything else about the order stays in the
journal. Orders placed through our own API have no row.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, or_, select

from app.store.database import Database
from app.store.journal import trades
from app.store.schema import metadata

kite_orders = Table(
    "kite_orders",
    metadata,
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("account", String(64), nullable=False),
    Column("variety", String(16), nullable=False),
    Column("product", String(8), nullable=False),
    Column("validity", String(4), nullable=False),
    Column("validity_ttl", Integer),
    Column("tag", String(20)),
    Index("ix_kite_orders_account", "account", "order_id"),
)


@dataclass(frozen=True, slots=True)
class KiteOrderMeta:
    variety: str
    product: str
    validity: str
    validity_ttl: int | None
    tag: str | None


async def save_meta(database: Database, order_id: int, account: str, meta: KiteOrderMeta) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(
            kite_orders.insert().values(
                order_id=order_id,
                account=account,
                variety=meta.variety,
                product=meta.product,
                validity=meta.validity,
                validity_ttl=meta.validity_ttl,
                tag=meta.tag,
            )
        )


async def load_meta(
    database: Database, account: str, order_ids: Collection[int]
) -> dict[int, KiteOrderMeta]:
    if not order_ids:
        return {}
    query = select(kite_orders).where(
        kite_orders.c.account == account, kite_orders.c.order_id.in_(list(order_ids))
    )
    async with database.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {
        row.order_id: KiteOrderMeta(
            row.variety, row.product, row.validity, row.validity_ttl, row.tag
        )
        for row in rows
    }


async def account_trades(
    database: Database, account: str, *, order_id: int | None = None, limit: int = 1000
) -> list[Any]:
    """The account's trades (as maker or taker), oldest first; one order's when given."""
    mine = or_(trades.c.maker_account == account, trades.c.taker_account == account)
    query = select(trades).where(mine)
    if order_id is not None:
        query = query.where(
            or_(trades.c.maker_order_id == order_id, trades.c.taker_order_id == order_id)
        )
    query = query.order_by(trades.c.ts_ns.desc(), trades.c.trade_id.desc()).limit(limit)
    async with database.engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    rows.reverse()
    return rows
