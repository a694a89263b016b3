"""Claim checks: record values too large for Kafka, kept in the database by reference.

``hub_claim_check`` holds the value; the record on the topic is a small pointer with the
``x-hub-claim-check`` header (hub/claimcheck.py). Pruned by age (hub/retention.py), hence
the index on ``created_at``.

Revision ID: 0013_claim_check
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_claim_check"
down_revision = "0007_invoice_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_claim_check",
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref"),
    )
    op.create_index("ix_hub_claim_check_created_at", "hub_claim_check", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_hub_claim_check_created_at", table_name="hub_claim_check")
    op.drop_table("hub_claim_check")
