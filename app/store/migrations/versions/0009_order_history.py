"""Order history (one row per state an order passed through) and Kite's terms on orders.

Kite's product, validity, TTL minutes and tag were kept in the order's ``client_order_id``
(``kite:<product>:<validity>:<ttl>:<tag>:<nonce>``); they move into their own columns and
such a ``client_order_id`` becomes null. Orders placed before this revision have no history
rows (Kite's history route then rebuilds one from the order and its trades).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TERMS = (
    ("product", sa.String(8)),
    ("validity", sa.String(8)),
    ("validity_ttl", sa.Integer()),
    ("tag", sa.String(20)),
)


def upgrade() -> None:
    op.create_table(
        "order_history",
        sa.Column("order_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(12), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("filled", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("price", sa.BigInteger),
        sa.Column("trigger_price", sa.BigInteger),
        sa.Column("reason", sa.String(40)),
        sa.PrimaryKeyConstraint("order_id", "seq", name="pk_order_history"),
    )
    for name, type_ in _TERMS:
        op.add_column("orders", sa.Column(name, type_))
    _move_kite_terms()


def _move_kite_terms() -> None:
    """``kite:<product>:<validity>:<ttl>:<tag>:<nonce>`` into the columns (few rows: Python)."""
    bind = op.get_bind()
    orders = sa.table(
        "orders",
        sa.column("order_id", sa.BigInteger),
        sa.column("client_order_id", sa.String),
        *(sa.column(name, type_) for name, type_ in _TERMS),
    )
    rows = bind.execute(
        sa.select(orders.c.order_id, orders.c.client_order_id).where(
            orders.c.client_order_id.like("kite:%")
        )
    ).all()
    for order_id, client_order_id in rows:
        parts = client_order_id.split(":")
        if len(parts) != 6:
            continue
        _prefix, product, validity, ttl, tag, _nonce = parts
        bind.execute(
            orders.update()
            .where(orders.c.order_id == order_id)
            .values(
                client_order_id=None,
                product=product,
                validity=validity,
                validity_ttl=int(ttl) if ttl.isdigit() else None,
                tag=tag or None,
            )
        )


def downgrade() -> None:
    for name, _type in reversed(_TERMS):
        op.drop_column("orders", name)
    op.drop_table("order_history")
