"""Enable TimescaleDB where the server has it; plain PostgreSQL and SQLite go on without.

Revision ID: 0001
Revises:
"""

from alembic import op

from app.store.timescale import timescaledb_wanted

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if timescaledb_wanted(bind):
        op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


def downgrade() -> None:
    pass
