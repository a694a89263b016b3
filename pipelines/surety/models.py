"""The surety pipeline's tables (SQLModel; created by migration 0004_surety_invoices).

- ``sur_case``: the contract facts of a case (SUR-2), with every 請負金額 it has had.
- ``sur_guarantee``: one row per guarantee contract (保証契約番号): its first form (SUR-3)
  and whether its acceptance already completed its step (SUR-6).
- ``sur_paper_task``: paper originals due by the contract date (SUR-5).
- ``sur_waiting_certificate``: certificates fetched before the city registered the case;
  they are decided when the case facts arrive.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["GuaranteeRow", "PaperTaskRow", "SuretyCaseRow", "WaitingCertificateRow"]

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Ts = sa.DateTime(timezone=True)


def _ts(*, nullable: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_column=sa.Column(Ts, nullable=nullable))


class SuretyCaseRow(SQLModel, table=True):
    """A case's contract facts (the CaseRegistered/CaseUpdated payload as JSON)."""

    __tablename__ = "sur_case"

    case_id: str = Field(primary_key=True, max_length=100)
    entity: str = Field(max_length=64)
    facts: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    earlier_amounts: list[int] = Field(default_factory=list,
                                       sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = _ts()


class GuaranteeRow(SQLModel, table=True):
    """A guarantee contract: the form of its first certificate is the form for good (SUR-3)."""

    __tablename__ = "sur_guarantee"

    number: str = Field(primary_key=True, max_length=40)
    case_id: str = Field(max_length=100, index=True)
    product: str = Field(max_length=20)
    form: str = Field(max_length=12)
    completed: bool = False
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class PaperTaskRow(SQLModel, table=True):
    """A paper original to receive by ``due_date`` (SUR-5)."""

    __tablename__ = "sur_paper_task"

    task_id: str = Field(primary_key=True, max_length=120)
    case_id: str = Field(max_length=100, index=True)
    product: str = Field(max_length=20)
    due_date: date
    status: str = Field(max_length=12, index=True, description="open | received | superseded")
    opened_at: datetime = _ts()
    closed_at: datetime | None = _ts(nullable=True)


class WaitingCertificateRow(SQLModel, table=True):
    """A fetched certificate whose case is not registered yet."""

    __tablename__ = "sur_waiting_certificate"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True,
                                                             autoincrement=True))
    case_id: str = Field(max_length=100, index=True)
    certificate: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    received_at: datetime = _ts()
