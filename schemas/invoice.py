"""Invoices (請求書) for a case: received, accepted or rejected (INV-1 … INV-3).

An invoice arrives either as structured fields (what a web form or the online
application system sends) or as a digital invoice (デジタルインボイス, INV-2): a JP PINT
UBL 2.1 ``Invoice`` document (Peppol, ``urn:peppol:pint:billing-1@jp-1``). A qualified
invoice (適格請求書, INV-1) carries the issuer number ``T`` + 13-digit 法人番号, which must be
registered in the contractor's user data first. Accepted invoices become payment
requests in the ERP (INV-3).

Topics: ``Topics.INVOICE_COMMANDS`` (submitted), ``Topics.INVOICE_EVENTS`` (accepted,
rejected); key: the case.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.ids import CaseId
from schemas.registry import Payload, message
from schemas.rejection import RuleViolation

__all__ = [
    "InvoiceAccepted",
    "InvoiceFields",
    "InvoiceFormat",
    "InvoiceRejected",
    "InvoiceSubmitted",
    "IssuerNumber",
    "TaxSubtotal",
]

MAX_UBL_CHARS = 512_000
"""A JP PINT invoice of a public works contract is a few kB; more is refused (INV-2)."""

Yen = Annotated[int, Field(ge=0, le=10**13, description="Japanese yen, whole.")]
IssuerNumber = Annotated[str, Field(
    min_length=1, max_length=20,
    description="適格請求書発行事業者登録番号: T + 13-digit 法人番号 (INV-1); checked by the "
                "pipeline, so a wrong one is a rejection with the rule, not a poison message.")]


class InvoiceFormat(enum.StrEnum):
    """How the invoice reached the hub."""

    STRUCTURED = "structured"
    """Fields typed into a form."""
    JP_PINT = "jp-pint"
    """A JP PINT UBL 2.1 Invoice (デジタルインボイス, INV-2)."""


class TaxSubtotal(BaseModel):
    """税率ごとに区分した合計 (a qualified invoice states the tax per rate)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    rate_percent: int = Field(ge=0, le=100, description="10 (標準税率) or 8 (軽減税率), or 0.")
    taxable_amount: Yen
    tax_amount: Yen


class InvoiceFields(BaseModel):
    """The essentials of a qualified invoice, whatever form it came in."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    invoice_id: str = Field(min_length=1, max_length=100, description="請求書番号.")
    issue_date: date = Field(description="請求日 (交付年月日).")
    issuer_number: IssuerNumber
    seller_name: str = Field(min_length=1, max_length=200, description="請求者 (受注者の商号).")
    buyer_name: str = Field(min_length=1, max_length=200, description="宛先 (the city).")
    tax_subtotals: tuple[TaxSubtotal, ...] = Field(min_length=1)
    payable_amount: Yen = Field(description="請求金額 (税込).")


@message("invoice.submitted", 1)
class InvoiceSubmitted(Payload):
    """An invoice for a case: ``fields`` or a JP PINT ``ubl_xml`` document, never both."""

    case_id: CaseId
    contract_number: str = Field(min_length=1, max_length=30, pattern=r"^[A-Za-z0-9-]+$",
                                 description="契約番号 the invoice is for.")
    contractor_id: str = Field(pattern=r"^[0-9]{16}$", description="請求者の企業ID.")
    fields: InvoiceFields | None = None
    ubl_xml: str | None = Field(default=None, min_length=1, max_length=MAX_UBL_CHARS,
                                description="The UBL 2.1 Invoice document (JP PINT).")

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.fields is None) == (self.ubl_xml is None):
            raise ValueError("an invoice has either fields or ubl_xml, exactly one")
        return self

    @property
    def format(self) -> InvoiceFormat:
        return InvoiceFormat.STRUCTURED if self.fields is not None else InvoiceFormat.JP_PINT


@message("invoice.accepted", 1)
class InvoiceAccepted(Payload):
    """The invoice is qualified (INV-1, INV-2) and goes to the ERP for payment (INV-3)."""

    case_id: CaseId
    contractor_id: str = Field(pattern=r"^[0-9]{16}$")
    invoice_id: str = Field(min_length=1, max_length=100)
    issuer_number: str = Field(pattern=r"^T[0-9]{13}$")
    payable_amount: Yen
    source_format: InvoiceFormat
    erp_business_key: str = Field(min_length=1, max_length=80)


@message("invoice.rejected", 1)
class InvoiceRejected(Payload):
    """The invoice was refused; each violation names its INV rule (and the UBL element)."""

    case_id: CaseId
    contractor_id: str = Field(pattern=r"^[0-9]{16}$")
    invoice_id: str | None = Field(default=None, max_length=100)
    violations: tuple[RuleViolation, ...] = Field(min_length=1)
