"""Kite Connect order attributes our own order has no field for: variety, product, validity
(with its TTL minutes) and tag, one row per order placed through the Kite-compatible API.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kite_orders",
        sa.Column("order_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("variety", sa.String(16), nullable=False),
        sa.Column("product", sa.String(8), nullable=False),
        sa.Column("validity", sa.String(4), nullable=False),
        sa.Column("validity_ttl", sa.Integer),
        sa.Column("tag", sa.String(20)),
    )
    op.create_index("ix_kite_orders_account", "kite_orders", ["account", "order_id"])


def downgrade() -> None:
    op.drop_table("kite_orders")
