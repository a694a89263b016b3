"""The invoice pipeline's payment state and qualified-invoice items (pipelines/invoices/
models.py): an accepted invoice is requested, paid or replaced by a correction (INV-6), and
keeps its transaction and due dates (INV-1).

Revision ID: 0007_invoice_payments
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_invoice_payments"
down_revision = "0006_registration_indexes"
branch_labels = None
depends_on = None

_COLUMNS = ("status", "transaction_date", "due_date", "replaces_invoice_id", "replaced_by",
            "paid_on")


def upgrade() -> None:
    with op.batch_alter_table("inv_invoice") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False,
                                   server_default="requested"))
        batch.add_column(sa.Column("transaction_date", sa.Date, nullable=True))
        batch.add_column(sa.Column("due_date", sa.Date, nullable=True))
        batch.add_column(sa.Column("replaces_invoice_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("replaced_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("paid_on", sa.Date, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inv_invoice") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
