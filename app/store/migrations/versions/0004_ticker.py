"""Ticker: durable instrument subscriptions, and an index for candles on trades.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instrument_subscriptions",
        sa.Column("instrument_token", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.CheckConstraint(
            "mode IN ('ltp', 'quote', 'full')", name="ck_instrument_subscriptions_mode"
        ),
        sa.CheckConstraint(
            "status IN ('active', 'paused')", name="ck_instrument_subscriptions_status"
        ),
    )
    # Candles read one instrument's trades by their integer timestamp.
    op.create_index("ix_trades_instrument_ts_ns", "trades", ["instrument_token", "ts_ns"])


def downgrade() -> None:
    op.drop_index("ix_trades_instrument_ts_ns", table_name="trades")
    op.drop_table("instrument_subscriptions")
