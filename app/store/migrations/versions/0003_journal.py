"""Journal: orders, trades (a hypertable with TimescaleDB) and batches.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from app.store.timescale import create_hypertable

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64)),
        sa.Column("batch_id", sa.String(32)),
        sa.Column("instrument_token", sa.BigInteger, nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("order_type", sa.String(10), nullable=False),
        sa.Column("time_in_force", sa.String(3), nullable=False),
        sa.Column("post_only", sa.Boolean, nullable=False),
        sa.Column("stp", sa.String(16), nullable=False),
        sa.Column("price", sa.BigInteger),
        sa.Column("trigger_price", sa.BigInteger),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("filled", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.BigInteger),
        sa.Column("reason", sa.String(40)),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("account", "client_order_id", name="uq_orders_account_client_order_id"),
    )
    op.create_index("ix_orders_status_instrument", "orders", ["status", "instrument_token"])
    op.create_index("ix_orders_account_order", "orders", ["account", "order_id"])

    op.create_table(
        "trades",
        sa.Column("trade_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("instrument_token", sa.BigInteger, nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("maker_order_id", sa.BigInteger, nullable=False),
        sa.Column("taker_order_id", sa.BigInteger, nullable=False),
        sa.Column("maker_account", sa.String(64), nullable=False),
        sa.Column("taker_account", sa.String(64), nullable=False),
        sa.Column("taker_side", sa.String(4), nullable=False),
        sa.PrimaryKeyConstraint("trade_id", "executed_at", name="pk_trades"),
    )
    op.create_index("ix_trades_instrument_time", "trades", ["instrument_token", "executed_at"])
    op.create_index("ix_trades_maker", "trades", ["maker_order_id"])
    op.create_index("ix_trades_taker", "trades", ["taker_order_id"])
    create_hypertable(op.get_bind(), "trades", "executed_at")

    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(32), primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.UniqueConstraint(
            "account", "idempotency_key", name="uq_batches_account_idempotency_key"
        ),
    )
    op.create_index("ix_batches_account_created", "batches", ["account", "created_ns"])


def downgrade() -> None:
    op.drop_table("batches")
    op.drop_table("trades")
    op.drop_table("orders")
