"""The registration pipeline's tables (pipelines/registration/models.py): 資格審査情報,
contractors, cards and their registrations, held confirmations (REG-11) and pending
propagations (REG-9, CHG-3, RNW-8).

Revision ID: 0002_registration
Revises: 0001_hub_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_registration"
down_revision = "0001_hub_core"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "reg_qualification",
        _id(),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False),
        sa.Column("trade_name", sa.String(200), nullable=False),
        sa.Column("trade_name_key", sa.String(200), nullable=False),
        sa.Column("postal_code", sa.String(8), nullable=True),
        sa.Column("head_office_address", sa.String(200), nullable=False),
        sa.Column("representative_name", sa.String(200), nullable=False),
        sa.Column("representative_title", sa.String(200), nullable=True),
        sa.Column("contractor_name", sa.String(200), nullable=False),
        sa.Column("corporate_number", sa.String(13), nullable=True),
        sa.Column("invoice_number", sa.String(14), nullable=True),
        sa.Column("qualified_until", sa.Date, nullable=True),
        sa.Column("password_verifier", sa.String(300), nullable=True),
        sa.Column("password_changed_at", Ts, nullable=True),
        sa.Column("updated_at", Ts, nullable=False),
        sa.UniqueConstraint("entity", "domain", "user_id", name="uq_reg_qualification"),
    )
    op.create_index("ix_reg_qualification_user_id", "reg_qualification", ["user_id"])
    op.create_index("ix_reg_qualification_trade_name_key", "reg_qualification",
                    ["trade_name_key"])
    op.create_table(
        "reg_contractor",
        _id(),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False),
        sa.Column("company_id", sa.String(16), nullable=False),
        sa.Column("company_name", sa.String(200), nullable=False),
        sa.Column("company_key", sa.String(200), nullable=False),
        sa.Column("corporate_number", sa.String(13), nullable=True),
        sa.Column("representative_contact", sa.JSON, nullable=True),
        sa.Column("created_at", Ts, nullable=False),
        sa.UniqueConstraint("network", "user_id", name="uq_reg_contractor"),
        sa.UniqueConstraint("company_id", name="uq_reg_contractor_company_id"),
    )
    op.create_index("ix_reg_contractor_company_key", "reg_contractor", ["company_key"])
    op.create_index("ix_reg_contractor_corporate_number", "reg_contractor",
                    ["corporate_number"])
    op.create_table(
        "reg_card",
        _id(),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False),
        sa.Column("holder_name", sa.String(100), nullable=False),
        sa.Column("holder_address", sa.String(200), nullable=False),
        sa.Column("holder_organization", sa.String(200), nullable=True),
        sa.Column("not_before", Ts, nullable=False),
        sa.Column("not_after", Ts, nullable=False),
        sa.Column("authenticated_at", Ts, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.UniqueConstraint("issuer", "serial", name="uq_reg_card"),
    )
    op.create_index("ix_reg_card_owner", "reg_card", ["network", "user_id"])
    op.create_table(
        "reg_card_registration",
        _id(),
        sa.Column("card_id", BigId, sa.ForeignKey("reg_card.id"), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("department_name", sa.String(200), nullable=False),
        sa.Column("contact", sa.JSON, nullable=False),
        sa.Column("registered_at", Ts, nullable=False),
        sa.UniqueConstraint("card_id", "entity", "domain", name="uq_reg_card_registration"),
    )
    op.create_index("ix_reg_card_registration_card_id", "reg_card_registration", ["card_id"])
    op.create_table(
        "reg_pending_confirmation",
        sa.Column("confirmation_id", sa.String(36), primary_key=True),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("command", sa.JSON, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
    )
    op.create_index("ix_reg_pending_confirmation_serial", "reg_pending_confirmation",
                    ["serial"])
    op.create_table(
        "reg_pending_propagation",
        sa.Column("propagation_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("target_entity", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(20), nullable=False),
        sa.Column("immediate", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("due_at", Ts, nullable=False),
        sa.Column("scheduled", sa.JSON, nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("done_at", Ts, nullable=True),
    )
    op.create_index("ix_reg_pending_propagation_status", "reg_pending_propagation", ["status"])
    op.create_index("ix_reg_pending_propagation_due_at", "reg_pending_propagation", ["due_at"])


def downgrade() -> None:
    op.drop_table("reg_pending_propagation")
    op.drop_table("reg_pending_confirmation")
    op.drop_table("reg_card_registration")
    op.drop_table("reg_card")
    op.drop_table("reg_contractor")
    op.drop_table("reg_qualification")
