"""The registration pipeline's tables (SQLModel; created by migration 0002_registration).

- ``reg_qualification``: 資格審査情報 per entity, domain and user ID (REG-3, REG-5), with
  the password verifier and password-changed-at (REG-4); never the password itself.
- ``reg_contractor``: a user ID in a network, its 企業ID and 代表窓口 (REG-2, REG-10).
- ``reg_card`` and ``reg_card_registration``: cards by issuer + serial (REG-1) and where
  each is registered, per entity and domain, active or revoked (REG-2, RNW-7).
- ``reg_pending_confirmation``: registrations held back for confirmation (REG-11).
- ``reg_pending_propagation``: what is due at other entities, one row per target, with
  its own state, so the nightly batch is idempotent and resumable (REG-9, CHG-3, RNW-8).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = [
    "CardRegistrationRow",
    "CardRow",
    "ContractorRow",
    "PendingConfirmationRow",
    "PendingPropagationRow",
    "QualificationRow",
]

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def _id() -> Any:
    return Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None if nullable else ...,
                 sa_column=sa.Column(Ts, nullable=nullable, index=index))


def _json(*, nullable: bool = True) -> Any:
    return Field(default=None if nullable else ..., sa_column=sa.Column(sa.JSON,
                                                                        nullable=nullable))


class QualificationRow(SQLModel, table=True):
    """One row of 資格審査情報."""

    __tablename__ = "reg_qualification"
    __table_args__ = (sa.UniqueConstraint("entity", "domain", "user_id",
                                          name="uq_reg_qualification"),)

    id: int | None = _id()
    entity: str = Field(max_length=64)
    domain: str = Field(max_length=16)
    user_id: str = Field(max_length=20, index=True)
    trade_name: str = Field(max_length=200)
    trade_name_key: str = Field(max_length=200, index=True)
    postal_code: str | None = Field(default=None, max_length=8)
    head_office_address: str = Field(max_length=200)
    representative_name: str = Field(max_length=200)
    representative_title: str | None = Field(default=None, max_length=200)
    contractor_name: str = Field(max_length=200)
    corporate_number: str | None = Field(default=None, max_length=13)
    invoice_number: str | None = Field(default=None, max_length=14)
    qualified_until: date | None = None
    password_verifier: str | None = Field(default=None, max_length=300, repr=False)
    password_changed_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class ContractorRow(SQLModel, table=True):
    """A user ID in a network: 企業ID and 代表窓口 shared by all its cards (REG-2)."""

    __tablename__ = "reg_contractor"
    __table_args__ = (sa.UniqueConstraint("network", "user_id", name="uq_reg_contractor"),
                      sa.UniqueConstraint("company_id", name="uq_reg_contractor_company_id"))

    id: int | None = _id()
    network: str = Field(max_length=64)
    user_id: str = Field(max_length=20)
    company_id: str = Field(max_length=16)
    company_name: str = Field(max_length=200)
    company_key: str = Field(max_length=200, index=True)
    corporate_number: str | None = Field(default=None, max_length=13, index=True)
    representative_contact: dict[str, Any] | None = _json()
    created_at: datetime = _ts()


class CardRow(SQLModel, table=True):
    """An IC card by issuer + serial: bound to one user ID forever (REG-1)."""

    __tablename__ = "reg_card"
    __table_args__ = (sa.UniqueConstraint("issuer", "serial", name="uq_reg_card"),
                      sa.Index("ix_reg_card_owner", "network", "user_id"))

    id: int | None = _id()
    issuer: str = Field(max_length=500)
    serial: str = Field(max_length=64)
    network: str = Field(max_length=64)
    user_id: str = Field(max_length=20)
    holder_name: str = Field(max_length=100)
    holder_address: str = Field(max_length=200)
    holder_organization: str | None = Field(default=None, max_length=200)
    not_before: datetime = _ts()
    not_after: datetime = _ts()
    authenticated_at: datetime | None = _ts(nullable=True)
    status: str = Field(max_length=16, description="active | revoked (RNW-7) | expired")


class CardRegistrationRow(SQLModel, table=True):
    """One card at one entity and domain, with its ICカード利用部署 contact."""

    __tablename__ = "reg_card_registration"
    __table_args__ = (sa.UniqueConstraint("card_id", "entity", "domain",
                                          name="uq_reg_card_registration"),)

    id: int | None = _id()
    # Looked up by card through uq_reg_card_registration (card_id first): no index of its own.
    card_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("reg_card.id"),
                                             nullable=False))
    entity: str = Field(max_length=64)
    domain: str = Field(max_length=16)
    status: str = Field(max_length=16, description="active | revoked")
    department_name: str = Field(max_length=200)
    contact: dict[str, Any] = _json(nullable=False)
    registered_at: datetime = _ts()


class PendingConfirmationRow(SQLModel, table=True):
    """A registration held for explicit confirmation (REG-11)."""

    __tablename__ = "reg_pending_confirmation"

    confirmation_id: str = Field(primary_key=True, max_length=36)
    issuer: str = Field(max_length=500)
    serial: str = Field(max_length=64, index=True)
    command: dict[str, Any] = _json(nullable=False)
    created_at: datetime = _ts()


class PendingPropagationRow(SQLModel, table=True):
    """What is due at one other entity (REG-9, CHG-3, RNW-8); ``scheduled`` is the event."""

    __tablename__ = "reg_pending_propagation"
    # What the nightly propagation asks for: the pending rows by due time (migration 0006).
    __table_args__ = (sa.Index("ix_reg_pending_propagation_due", "due_at", "propagation_id",
                               postgresql_where=sa.text("status = 'pending'"),
                               sqlite_where=sa.text("status = 'pending'")),)

    propagation_id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=16)
    network: str = Field(max_length=64)
    target_entity: str = Field(max_length=64)
    domain: str = Field(max_length=16)
    user_id: str = Field(max_length=20)
    immediate: bool = False
    status: str = Field(max_length=16, description="pending | done | skipped")
    attempts: int = 0
    note: str = Field(default="", max_length=500)
    due_at: datetime = _ts()
    scheduled: dict[str, Any] = _json(nullable=False)
    created_at: datetime = _ts()
    done_at: datetime | None = _ts(nullable=True)
