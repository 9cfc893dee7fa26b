"""The trading day: instruments may be ``expired``; positions per account and instrument.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


_VALUES = (
    "net",
    "buy_quantity",
    "buy_value",
    "sell_quantity",
    "sell_value",
    "open_value",
    "day",
    "overnight",
    "day_buy_quantity",
    "day_buy_value",
    "day_sell_quantity",
    "day_sell_value",
    "last_trade_id",
    "updated_ns",
)


def _status_check(statuses: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("instruments") as batch:
        batch.drop_constraint("ck_instruments_status", type_="check")
        batch.create_check_constraint("ck_instruments_status", f"status IN ({statuses})")


def upgrade() -> None:
    _status_check("'active', 'halted', 'delisted', 'expired'")
    op.create_table(
        "positions",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("instrument_token", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _VALUES),
        sa.PrimaryKeyConstraint("account", "instrument_token", name="pk_positions"),
    )


def downgrade() -> None:
    op.drop_table("positions")
    op.execute("UPDATE instruments SET status = 'delisted' WHERE status = 'expired'")
    _status_check("'active', 'halted', 'delisted'")
