"""Registrations in the municipal ERP (財務会計): contracts, advance payments, payments.

The pipelines ask for a registration on ``Topics.ERP_COMMANDS``; the ERP
connector registers it over SOAP and reports on ``Topics.ERP_EVENTS``.
Each request carries a ``business_key`` chosen by the pipeline (one per
contract, advance-payment request or invoice): registering the same key twice is
one registration, so a redelivered command has no second effect.

- contract: a concluded contract (契約登録), after CON-2.
- advance payment: a 前払金請求, completed by an accepted surety (SUR-6).
- payment: a 支払請求 from an accepted invoice (INV-3), with the qualified
  invoice issuer number (INV-1), its due date, and for a correction the payment request
  it replaces (INV-6).
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Annotated, Self

from pydantic import AwareDatetime, Field, model_validator

from schemas.registry import Payload, message
from schemas.rejection import RuleViolation

__all__ = [
    "BusinessKey",
    "ErpRegistered",
    "ErpRegistrationKind",
    "ErpRegistrationRejected",
    "ErpRegistrationRequested",
]

BusinessKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="The registration's key in the ERP, e.g. 'saitama-pref:R8-0123:contract'.",
    ),
]
ContractNo = Annotated[str, Field(min_length=1, max_length=30, pattern=r"^[A-Za-z0-9-]+$",
                                  description="契約番号 in the city's numbering.")]
Yen = Annotated[int, Field(ge=1, le=10**13, description="Japanese yen, whole.")]


class ErpRegistrationKind(enum.StrEnum):
    """What is registered; each is one SOAP operation of the ERP."""

    CONTRACT = "contract"
    """契約登録 (RegisterContract), after conclusion (CON-2)."""
    ADVANCE_PAYMENT = "advance-payment"
    """前払金請求 (RegisterAdvancePaymentRequest), with its surety (SUR-6)."""
    PAYMENT = "payment"
    """支払請求 (RegisterPaymentRequest), from an accepted invoice (INV-3)."""


@message("erp.registration-requested", 1)
class ErpRegistrationRequested(Payload):
    """Register one contract, advance-payment request or payment request in the ERP."""

    kind: ErpRegistrationKind
    business_key: BusinessKey
    contract_number: ContractNo
    contractor_id: str = Field(pattern=r"^[0-9]{16}$", description="企業ID (16 digits).")
    contractor_name: str = Field(min_length=1, max_length=100, description="商号又は名称.")
    amount_jpy: Yen = Field(description="請負金額 (contract) or 請求金額 (payments).")
    subject: str | None = Field(default=None, max_length=200,
                                description="工事名・件名 (contract only).")
    contract_date: date | None = Field(default=None, description="契約日 (contract only).")
    period_start: date | None = Field(default=None, description="工期 from (contract only).")
    period_end: date | None = Field(default=None, description="工期 to (contract only).")
    request_date: date | None = Field(default=None, description="請求日 (payments only).")
    surety_number: str | None = Field(
        default=None, pattern=r"^[0-9]{5}-[0-9A-Z]{4,8}$",
        description="保証契約番号 (advance payment only, SUR-6).")
    invoice_number: str | None = Field(
        default=None, pattern=r"^T[0-9]{13}$",
        description="適格請求書発行事業者登録番号 (payment only, INV-1).")
    due_date: date | None = Field(default=None, description="支払期日 (payment only, if stated).")
    replaces_business_key: BusinessKey | None = Field(
        default=None, description="The unpaid payment request this one replaces: the invoice "
                                  "it corrects (payment only, INV-6).")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Self:
        need: dict[ErpRegistrationKind, tuple[str, ...]] = {
            ErpRegistrationKind.CONTRACT: ("subject", "contract_date", "period_start",
                                           "period_end"),
            ErpRegistrationKind.ADVANCE_PAYMENT: ("request_date", "surety_number"),
            ErpRegistrationKind.PAYMENT: ("request_date", "invoice_number"),
        }
        missing = [name for name in need[self.kind] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.kind.value} registration needs {', '.join(missing)}")
        if self.kind is not ErpRegistrationKind.PAYMENT and (
                self.due_date is not None or self.replaces_business_key is not None):
            raise ValueError("due_date and replaces_business_key are for payments only")
        if (self.period_start and self.period_end and self.period_end < self.period_start):
            raise ValueError("period_end is before period_start")
        return self


@message("erp.registered", 1)
class ErpRegistered(Payload):
    """The ERP holds the registration. ``duplicate``: it already did (an idempotent repeat)."""

    kind: ErpRegistrationKind
    business_key: BusinessKey
    erp_reference: str = Field(min_length=1, max_length=64, description="The ERP's own number.")
    registered_at: AwareDatetime
    duplicate: bool = False


@message("erp.registration-rejected", 1)
class ErpRegistrationRejected(Payload):
    """The ERP refused the registration for good; the violations say why and what to do."""

    kind: ErpRegistrationKind
    business_key: BusinessKey
    violations: tuple[RuleViolation, ...] = Field(min_length=1)
