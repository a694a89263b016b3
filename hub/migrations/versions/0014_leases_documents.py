"""Leases of the periodic jobs (hub/leases.py) and the city signer's record of what it
signed (hub/contract/models.py): work done once across ``hub run`` processes.

Revision ID: 0014_leases_documents
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_leases_documents"
down_revision = "0009_rules_gaps"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hub_lease",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.Column("acquired_at", Ts, nullable=False),
    )
    op.create_table(
        "con_city_signature",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("contractor_sha256", sa.String(64), primary_key=True),
        sa.Column("signed_sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("signer_subject", sa.String(300), nullable=False),
        sa.Column("signed_at", Ts, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("con_city_signature")
    op.drop_table("hub_lease")
