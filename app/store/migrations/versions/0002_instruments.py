"""The instrument registry table.

Revision ID: 0002
Revises: 0001

Decimal columns: NUMERIC(20, 8) on PostgreSQL (exact); on SQLite, whose NUMERIC affinity
stores floats, a VARCHAR holding the canonical decimal string. ``ExactDecimal`` in
``app.store.instruments`` does the same choice at run time, so both read back exactly.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        exact: sa.types.TypeEngine = sa.String(40)
    else:
        exact = sa.Numeric(20, 8)
    op.create_table(
        "instruments",
        sa.Column("instrument_token", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("exchange_token", sa.BigInteger, nullable=False),
        sa.Column("exchange", sa.String(16), nullable=False),
        sa.Column("tradingsymbol", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("instrument_type", sa.String(16), nullable=False),
        sa.Column("segment", sa.String(32), nullable=False),
        sa.Column("tick_size", exact, nullable=False),
        sa.Column("lot_size", exact, nullable=False),
        sa.Column("expiry", sa.Date, nullable=True),
        sa.Column("strike", exact, nullable=False),
        sa.Column("last_price", exact, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("exchange", "tradingsymbol", name="uq_instruments_exchange_symbol"),
        sa.CheckConstraint(
            "status IN ('active', 'halted', 'delisted')", name="ck_instruments_status"
        ),
    )


def downgrade() -> None:
    op.drop_table("instruments")
