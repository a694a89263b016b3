"""The delivery machinery: processed messages, outbox, scheduled retries.

Revision ID: 0001_hub_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_hub_core"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hub_processed_message",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("processed_at", Ts, nullable=False),
    )
    op.create_table(
        "hub_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(250), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "hub_scheduled_retry",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(250), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("due_at", Ts, nullable=False),
        sa.Column("history", sa.Text, nullable=False),
        sa.UniqueConstraint("consumer", "message_id", name="uq_retry_message"),
    )
    op.create_index("ix_hub_scheduled_retry_consumer", "hub_scheduled_retry", ["consumer"])
    op.create_index("ix_hub_scheduled_retry_due_at", "hub_scheduled_retry", ["due_at"])


def downgrade() -> None:
    op.drop_table("hub_scheduled_retry")
    op.drop_table("hub_outbox")
    op.drop_table("hub_processed_message")
