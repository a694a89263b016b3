"""Fewer indexes to keep up on the registration tables' hot inserts.

- ``reg_card_registration(card_id)`` went: ``uq_reg_card_registration`` (card_id, entity,
  domain) starts with the same column and serves every look-up by card.
- ``reg_pending_propagation``'s indexes on ``status`` (three values) and on ``due_at`` went
  for one partial index on (due_at, propagation_id) over the pending rows: exactly what
  the nightly propagation (REG-9, CHG-3, RNW-8) asks for, in the order it asks for it, and
  rows leave it once done.

Revision ID: 0006_registration_indexes
Revises: 0005_contract
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_registration_indexes"
down_revision = "0005_contract"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_reg_card_registration_card_id", table_name="reg_card_registration")
    op.drop_index("ix_reg_pending_propagation_status", table_name="reg_pending_propagation")
    op.drop_index("ix_reg_pending_propagation_due_at", table_name="reg_pending_propagation")
    op.create_index("ix_reg_pending_propagation_due", "reg_pending_propagation",
                    ["due_at", "propagation_id"], postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index("ix_reg_pending_propagation_due", table_name="reg_pending_propagation")
    op.create_index("ix_reg_pending_propagation_due_at", "reg_pending_propagation", ["due_at"])
    op.create_index("ix_reg_pending_propagation_status", "reg_pending_propagation", ["status"])
    op.create_index("ix_reg_card_registration_card_id", "reg_card_registration", ["card_id"])
