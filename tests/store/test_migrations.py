"""Migration 0009 moves Kite's terms out of ``client_order_id`` into the order's columns."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, select, text

from app.settings import Settings
from app.store.database import Database
from app.store.journal import orders
from app.store.migrate import alembic_config, current_revision, migrate

_INSERT = text(
    "INSERT INTO orders (order_id, account, client_order_id, instrument_token, side, "
    "order_type, time_in_force, post_only, stp, quantity, filled, remaining, status, "
    "created_ns, updated_ns, last_seq) VALUES (:id, 'a', :cid, 408065, 'buy', 'limit', 'DAY', "
    ":post_only, 'cancel_newest', 5, 0, 5, 'open', 1, 1, :id)"
)


class TestKiteTermsMigration:
    async def test_kite_client_order_ids_become_columns(self, backend_settings: Settings) -> None:
        database = Database.create(backend_settings.db.url, data_dir=backend_settings.db.data_dir)
        try:
            await migrate(database)

            def downgrade(connection: Connection) -> None:
                command.downgrade(alembic_config(connection), "0008")

            async with database.engine.begin() as conn:
                await conn.run_sync(downgrade)
                for order_id, cid in (
                    (1, "kite:MIS:TTL:5:alpha-1:0a1b2c"),
                    (2, "kite:CNC:DAY:::0a1b2d"),
                    (3, "my-own-id"),
                    (4, None),
                ):
                    await conn.execute(_INSERT, {"id": order_id, "cid": cid, "post_only": False})
            assert await current_revision(database) == "0008"
            await migrate(database)
            columns = (
                orders.c.order_id,
                orders.c.client_order_id,
                orders.c.product,
                orders.c.validity,
                orders.c.validity_ttl,
                orders.c.tag,
            )
            async with database.engine.connect() as conn:
                rows = [tuple(r) for r in await conn.execute(select(*columns).order_by("order_id"))]
        finally:
            await database.dispose()
        assert rows == [
            (1, None, "MIS", "TTL", 5, "alpha-1"),
            (2, None, "CNC", "DAY", None, None),
            (3, "my-own-id", None, None, None, None),
            (4, None, None, None, None, None),
        ]
