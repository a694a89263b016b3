"""Review links by token hash with their one-time codes, the review audit (CON-3,
pipelines/contract/links.py), and the expiry indexes the edge purge deletes by
(hub/gateway/purge.py).

Links made before this revision carried ids derived from the case number; they have no
row here and so open nothing: the contractor asks the city for a new review mail.

Revision ID: 0010_review_links
Revises: 0006_registration_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_review_links"
down_revision = "0013_claim_check"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "con_review_link",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("case_id", sa.String(100), nullable=False, index=True),
        sa.Column("link_id", sa.String(36), nullable=False, index=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False, index=True),
        sa.Column("spent_at", Ts, nullable=True),
        sa.Column("code_sha256", sa.String(64), nullable=True),
        sa.Column("code_for", sa.String(254), nullable=True),
        sa.Column("code_expires_at", Ts, nullable=True),
        sa.Column("code_attempts", sa.Integer, nullable=False),
        sa.Column("codes_sent", sa.Integer, nullable=False),
    )
    op.create_table(
        "con_review_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", Ts, nullable=False, index=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(100), nullable=True, index=True),
        sa.Column("link_id", sa.String(36), nullable=True),
        sa.Column("actor", sa.String(254), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
    )
    op.create_index("ix_gw_challenge_expires_at", "gw_challenge", ["expires_at"])
    op.create_index("ix_gw_session_expires_at", "gw_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_gw_session_expires_at", table_name="gw_session")
    op.drop_index("ix_gw_challenge_expires_at", table_name="gw_challenge")
    op.drop_table("con_review_audit")
    op.drop_table("con_review_link")
