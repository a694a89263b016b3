"""The invoice pipeline's table (SQLModel; created by migration 0004_surety_invoices,
extended by 0007_invoice_payments).

``inv_invoice``: every accepted invoice, one per contractor and invoice number, so a
second submission of the same invoice never becomes a second payment (INV-3); with the
state of its payment: requested, paid, or replaced by a correction (INV-6).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["InvoiceRow"]

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class InvoiceRow(SQLModel, table=True):
    """An accepted invoice and the ERP payment key it was sent with."""

    __tablename__ = "inv_invoice"
    __table_args__ = (sa.UniqueConstraint("contractor_id", "invoice_id", name="uq_inv_invoice"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True,
                                                             autoincrement=True))
    contractor_id: str = Field(max_length=16)
    invoice_id: str = Field(max_length=100)
    case_id: str = Field(max_length=100, index=True)
    issuer_number: str = Field(max_length=14)
    payable_amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    source_format: str = Field(max_length=16)
    business_key: str = Field(max_length=80)
    accepted_at: datetime = Field(sa_column=sa.Column(sa.DateTime(timezone=True),
                                                      nullable=False))
    status: str = Field(default="requested", sa_column=sa.Column(
        sa.String(16), nullable=False, server_default="requested"))
    transaction_date: date | None = Field(default=None, sa_column=sa.Column(sa.Date))
    due_date: date | None = Field(default=None, sa_column=sa.Column(sa.Date))
    replaces_invoice_id: str | None = Field(default=None, max_length=100)
    replaced_by: str | None = Field(default=None, max_length=100)
    paid_on: date | None = Field(default=None, sa_column=sa.Column(sa.Date))
