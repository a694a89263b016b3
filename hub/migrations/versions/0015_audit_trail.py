"""The audit trail (hub/audit.py): one append-only, hash-chained table of staff steps,
review-link steps, dead-letter replays and connector pauses (docs/identity.md).

Revision ID: 0015_audit_trail
Revises: 0007_invoice_payments
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_audit_trail"
down_revision = "0014_leases_documents"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hub_audit",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_hub_audit_at", "hub_audit", ["at"])
    op.create_index("ix_hub_audit_entity", "hub_audit", ["entity"])


def downgrade() -> None:
    op.drop_index("ix_hub_audit_entity", table_name="hub_audit")
    op.drop_index("ix_hub_audit_at", table_name="hub_audit")
    op.drop_table("hub_audit")
