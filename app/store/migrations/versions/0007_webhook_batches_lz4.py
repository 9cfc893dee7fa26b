"""Webhook batches: compress ``events`` with lz4 instead of pglz (PostgreSQL).

A batch is written inside the journal's serial commit and holds hundreds of kilobytes of JSON;
pglz compressing it took ~10 ms of that commit, lz4 ~1 ms. A server built without lz4 keeps
the value uncompressed instead (STORAGE EXTERNAL: more bytes written, still ~1 ms). Only new
values are affected; SQLite has nothing to change.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _has_lz4() -> bool:
    found = op.get_bind().execute(
        sa.text(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
    )
    return bool(found.scalar())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    if _has_lz4():
        op.execute("ALTER TABLE webhook_batches ALTER COLUMN events SET COMPRESSION lz4")
    else:
        op.execute("ALTER TABLE webhook_batches ALTER COLUMN events SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE webhook_batches ALTER COLUMN events SET COMPRESSION default")
    op.execute("ALTER TABLE webhook_batches ALTER COLUMN events SET STORAGE EXTENDED")
