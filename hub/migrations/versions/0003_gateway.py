"""The card-agent gateway's tables (hub/gateway/models.py): login challenges, card
sessions, registration outcomes and signing jobs.

Revision ID: 0003_gateway
Revises: 0002_registration
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_gateway"
down_revision = "0002_registration"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gw_challenge",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.Column("used_at", Ts, nullable=True),
    )
    op.create_table(
        "gw_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False, index=True),
        sa.Column("company_id", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("serial", sa.String(50), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
    )
    op.create_table(
        "gw_outcome",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", Ts, nullable=False),
    )
    op.create_table(
        "gw_signing_job",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False, index=True),
        sa.Column("procuring_entity", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("parties", sa.JSON, nullable=False),
        sa.Column("amount_yen", sa.BigInteger, nullable=False),
        sa.Column("document", sa.LargeBinary, nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("signed_document", sa.LargeBinary, nullable=True),
        sa.Column("signed_at", Ts, nullable=True),
        sa.Column("signer_issuer", sa.String(200), nullable=True),
        sa.Column("signer_serial", sa.String(50), nullable=True),
    )


def downgrade() -> None:
    for table in ("gw_signing_job", "gw_outcome", "gw_session", "gw_challenge"):
        op.drop_table(table)
