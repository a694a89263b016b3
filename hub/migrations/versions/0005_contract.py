"""The contract process's tables (pipelines/contract/models.py): cases and documents
(CON-2, CON-6, CON-7).

Revision ID: 0005_contract
Revises: 0004_surety_invoices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_contract"
down_revision = "0004_surety_invoices"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "con_case",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("procuring_entity", sa.String(64), nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("amount_yen", sa.BigInteger, nullable=False, index=True),
        sa.Column("contractor_user_id", sa.String(20), nullable=False),
        sa.Column("contractor_name", sa.String(200), nullable=False, index=True),
        sa.Column("city_name", sa.String(100), nullable=False),
        sa.Column("agreed", sa.Integer, nullable=False),
        sa.Column("parties", sa.Integer, nullable=False),
        sa.Column("opened_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False, index=True),
        sa.Column("concluded_at", Ts, nullable=True, index=True),
        sa.Column("signing_job_id", sa.String(64), nullable=True, index=True),
        sa.Column("review_link_id", sa.String(36), nullable=True, index=True),
        sa.Column("cloudsign_request_id", sa.String(36), nullable=True, index=True),
        sa.Column("document_sha256", sa.String(64), nullable=True),
        sa.Column("state", sa.JSON, nullable=False),
    )
    op.create_table(
        "con_document",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("con_document")
    op.drop_table("con_case")
