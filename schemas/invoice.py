"""Invoices (請求書) for a case: received, accepted, rejected or sent to staff (INV-1 … INV-6).

An invoice arrives either as structured fields (what a web form or the online
application system sends) or as a digital invoice (デジタルインボイス, INV-2): a JP PINT
UBL 2.1 ``Invoice`` document (Peppol, ``urn:peppol:pint:billing-1@jp-1``). A qualified
invoice (適格請求書, INV-1) carries the issuer number ``T`` + 13-digit 法人番号, which must be
registered in the contractor's user data first. Accepted invoices become payment
requests in the ERP (INV-3). Only an invoice (type 380) is paid: a credit note or a
negative invoice becomes a staff task (INV-6), and a correction replaces the payment
request of the invoice it corrects while that one is unpaid (INV-6).

Topics: ``Topics.INVOICE_COMMANDS`` (submitted, payment recorded), ``Topics.INVOICE_EVENTS``
(accepted, rejected, needs staff review); key: the case.
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
    "InvoiceNeedsStaffReview",
    "InvoicePaymentRecorded",
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
    """税率ごとに区分した合計 (a qualified invoice states the tax per rate), per tax category."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    rate_percent: int | None = Field(
        ge=0, le=100, description="10 (標準税率, S) or 8 (軽減税率, AA); 0 or none for the "
                                  "categories without tax (E, Z, G, O).")
    taxable_amount: Yen
    tax_amount: Yen
    category: str = Field(default="S", pattern=r"^(S|AA|E|Z|G|O)$",
                          description="Tax category (UNCL5305 as JP PINT uses it): S standard, "
                                      "AA reduced, E exempt, Z zero-rated, G export, O not "
                                      "subject to tax.")


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
    transaction_date: date | None = Field(
        default=None, description="取引年月日 (a qualified invoice needs it, INV-1): the "
                                  "delivery date, or the end of the invoice period or of the "
                                  "lines' periods.")
    transaction_start: date | None = Field(
        default=None, description="The start of the period, when the transactions span one.")
    due_date: date | None = Field(default=None, description="支払期日, carried to the ERP.")
    description: str | None = Field(default=None, max_length=200,
                                    description="取引内容: what was delivered (the items).")
    preceding_invoice_id: str | None = Field(
        default=None, max_length=100,
        description="The invoice this one corrects (JP PINT BillingReference, INV-6).")


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
    seller_name: str | None = Field(default=None, max_length=200, description="請求者.")
    buyer_name: str | None = Field(default=None, max_length=200, description="宛先.")
    issue_date: date | None = None
    transaction_date: date | None = Field(default=None, description="取引年月日.")
    transaction_start: date | None = None
    description: str | None = Field(default=None, max_length=200, description="取引内容.")
    tax_subtotals: tuple[TaxSubtotal, ...] = Field(
        default=(), description="税率ごとの対価の額と消費税額.")
    due_date: date | None = Field(default=None, description="支払期日.")
    replaces_invoice_id: str | None = Field(
        default=None, max_length=100,
        description="The unpaid invoice this correction replaces (its payment request too).")
    warnings: tuple[RuleViolation, ...] = Field(
        default=(), description="Warnings of the official JP PINT rules (INV-4), recorded.")


@message("invoice.rejected", 1)
class InvoiceRejected(Payload):
    """The invoice was refused; each violation names its INV rule (and the UBL element)."""

    case_id: CaseId
    contractor_id: str = Field(pattern=r"^[0-9]{16}$")
    invoice_id: str | None = Field(default=None, max_length=100)
    violations: tuple[RuleViolation, ...] = Field(min_length=1)


@message("invoice.needs-staff-review", 1)
class InvoiceNeedsStaffReview(Payload):
    """Not paid: a credit note, another type than 380 or a negative invoice (a return) is a
    task for the city's staff (INV-6), who settle it against the contractor's payments."""

    case_id: str = Field(min_length=1, max_length=100)
    contractor_id: str = Field(pattern=r"^[0-9]{16}$")
    invoice_id: str = Field(min_length=1, max_length=100)
    type_code: str = Field(min_length=1, max_length=10, description="UNCL1001: 380, 381, ...")
    payable_amount: int = Field(ge=-(10**13), le=10**13,
                                description="請求金額, negative for a return or credit.")
    preceding_invoice_id: str | None = Field(default=None, max_length=100)
    reasons: tuple[RuleViolation, ...] = Field(min_length=1)
    warnings: tuple[RuleViolation, ...] = ()


@message("invoice.payment-recorded", 1)
class InvoicePaymentRecorded(Payload):
    """The city paid an accepted invoice (from the ERP's payment run or the staff): from now on
    a correction can no longer replace it (INV-6)."""

    case_id: str = Field(min_length=1, max_length=100)
    contractor_id: str = Field(pattern=r"^[0-9]{16}$")
    invoice_id: str = Field(min_length=1, max_length=100)
    paid_on: date
