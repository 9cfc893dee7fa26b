"""Webhooks: endpoints, outbox and delivery attempts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGSERIAL.
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", sa.String(32), primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128)),
        sa.Column("previous_secret_expires_ns", sa.BigInteger),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(64)),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_account", "webhook_endpoints", ["account", "created_ns"])

    op.create_table(
        "webhook_outbox",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("order_id", sa.BigInteger),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("next_attempt_ns", sa.BigInteger, nullable=False),
        sa.Column("deadline_ns", sa.BigInteger, nullable=False),
        sa.Column("lease_until_ns", sa.BigInteger),
        sa.Column("last_attempt_ns", sa.BigInteger),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.String(300)),
        sa.Column("delivered_ns", sa.BigInteger),
        # Ids are part of the webhook-id: never reused.
        sqlite_autoincrement=True,
    )
    # Pending rows only (the claim's scan, oldest first); delivered rows drop out of it.
    pending = sa.text("status = 'pending'")
    op.create_index(
        "ix_webhook_outbox_pending",
        "webhook_outbox",
        ["id"],
        postgresql_where=pending,
        sqlite_where=pending,
    )
    op.create_index("ix_webhook_outbox_order", "webhook_outbox", ["endpoint_id", "order_id", "id"])

    op.create_table(
        "webhook_batches",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("deadline_ns", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )

    if op.get_bind().dialect.name == "postgresql":
        # A batch is a large JSON text written inside the order path's commit: lz4 compresses
        # it several times faster than the default pglz. Skipped where the server lacks it.
        op.execute(
            "DO $$ BEGIN EXECUTE 'ALTER TABLE webhook_batches ALTER COLUMN events "
            "SET COMPRESSION lz4'; EXCEPTION WHEN OTHERS THEN NULL; END $$"
        )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.BigInteger, nullable=False),
        sa.Column("attempted_ns", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.String(300)),
        sa.Column("duration_ms", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_attempts_outbox", "webhook_attempts", ["outbox_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_batches")
    op.drop_table("webhook_outbox")
    op.drop_table("webhook_endpoints")
