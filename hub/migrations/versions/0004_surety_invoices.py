"""The surety pipeline's tables (pipelines/surety/models.py: case facts, guarantee
contracts, paper tasks, certificates waiting for their case) and the invoice pipeline's
(pipelines/invoices/models.py: accepted invoices).

Revision ID: 0004_surety_invoices
Revises: 0003_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_surety_invoices"
down_revision = "0003_gateway"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sur_case",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("earlier_amounts", sa.JSON, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_table(
        "sur_guarantee",
        sa.Column("number", sa.String(40), primary_key=True),
        sa.Column("case_id", sa.String(100), nullable=False, index=True),
        sa.Column("product", sa.String(20), nullable=False),
        sa.Column("form", sa.String(12), nullable=False),
        sa.Column("completed", sa.Boolean, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
    )
    op.create_table(
        "sur_paper_task",
        sa.Column("task_id", sa.String(120), primary_key=True),
        sa.Column("case_id", sa.String(100), nullable=False, index=True),
        sa.Column("product", sa.String(20), nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("opened_at", Ts, nullable=False),
        sa.Column("closed_at", Ts, nullable=True),
    )
    op.create_table(
        "sur_waiting_certificate",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(100), nullable=False, index=True),
        sa.Column("certificate", sa.JSON, nullable=False),
        sa.Column("received_at", Ts, nullable=False),
    )
    op.create_table(
        "inv_invoice",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("contractor_id", sa.String(16), nullable=False),
        sa.Column("invoice_id", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(100), nullable=False, index=True),
        sa.Column("issuer_number", sa.String(14), nullable=False),
        sa.Column("payable_amount", sa.BigInteger, nullable=False),
        sa.Column("source_format", sa.String(16), nullable=False),
        sa.Column("business_key", sa.String(80), nullable=False),
        sa.Column("accepted_at", Ts, nullable=False),
        sa.UniqueConstraint("contractor_id", "invoice_id", name="uq_inv_invoice"),
    )


def downgrade() -> None:
    for table in ("inv_invoice", "sur_waiting_certificate", "sur_paper_task", "sur_guarantee",
                  "sur_case"):
        op.drop_table(table)
