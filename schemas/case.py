"""Procurement case facts (案件情報): the contract the city holds, to check sureties against.

After award the city's contract office registers what it agreed with the contractor:
発注者名 (the procuring entity's official name as certificates print it), 工事名,
受注者 (the JV's representative for a JV), 請負金額, 工期, 請負契約日, and per
guarantee product (前払金保証 / 契約保証) the 保証金額, 保証期限, 預託金融機関 and the
certificate form the contractor chose (電子 or 紙). The surety pipeline compares every
fetched certificate with these facts field by field (SUR-2), opens the manual task for
paper originals (SUR-5), and completes the step an accepted surety finishes (SUR-6).

Topic: ``Topics.CASE_EVENTS``; key: the case (``case_id`` is the envelope's correlation id).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.ids import CaseId
from schemas.mail import MailAddress
from schemas.registry import Payload, message
from schemas.surety import CertificateForm, SuretyProduct

__all__ = ["CaseFacts", "CaseId", "CaseRegistered", "CaseUpdated", "ExpectedSurety"]

Yen = Annotated[int, Field(ge=1, le=10**13, description="Japanese yen, whole.")]


class ExpectedSurety(BaseModel):
    """One guarantee product the contract requires, as the city expects its certificate."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    product: SuretyProduct
    form: CertificateForm = Field(
        default=CertificateForm.ELECTRONIC,
        description="電子保証 or 紙 (bank guarantee, performance-bond insurance: SUR-5). "
        "Each product may use its own form (SUR-4).")
    guarantee_amount: Yen = Field(description="保証金額 (前払金保証: the advance paid).")
    guarantee_deadline: date = Field(description="保証期限: the certificate must reach it.")
    depository: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="預託金融機関 (前払金保証 only; e.g. ○○銀行 ××支店).")

    @model_validator(mode="after")
    def _depository_of_advance_payment(self) -> Self:
        if (self.product is SuretyProduct.ADVANCE_PAYMENT) != (self.depository is not None):
            raise ValueError("預託金融機関 is required for 前払金保証 and only for it")
        return self


class CaseFacts(Payload):
    """The contract facts of one case; :class:`CaseRegistered` and :class:`CaseUpdated`."""

    case_id: CaseId
    contract_number: str = Field(min_length=1, max_length=30, pattern=r"^[A-Za-z0-9-]+$",
                                 description="契約番号 in the city's numbering (the ERP's key).")
    procuring_entity_name: str = Field(
        min_length=1, max_length=100,
        description="発注者名 as the certificates print it (e.g. 足利市長), compared by SUR-2.")
    work_name: str = Field(min_length=1, max_length=200, description="工事名.")
    contractor_id: str = Field(pattern=r"^[0-9]{16}$", description="受注者の企業ID (16 digits).")
    contractor_name: str = Field(min_length=1, max_length=200,
                                 description="受注者 (商号; the representative for a JV).")
    jv_name: str | None = Field(default=None, min_length=1, max_length=200, description="JV名.")
    contract_amount: Yen = Field(description="請負金額 (総額, tax included).")
    contract_date: date = Field(description="請負契約日: also the due date of paper originals.")
    work_period_start: date = Field(description="工期 (開始).")
    work_period_end: date = Field(description="工期 (終了).")
    sureties: tuple[ExpectedSurety, ...] = Field(
        default=(), max_length=2, description="The guarantee products the contract requires.")
    notice_email: MailAddress | None = Field(
        default=None,
        description="Where the contractor gets the surety result (電子保証の確認結果).")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.work_period_end < self.work_period_start:
            raise ValueError("工期: the end is before the start")
        products = [s.product for s in self.sureties]
        if len(set(products)) != len(products):
            raise ValueError("each guarantee product is listed once")
        return self

    def expected(self, product: SuretyProduct) -> ExpectedSurety | None:
        """The city's expectation for ``product``, if the contract requires it."""
        return next((s for s in self.sureties if s.product is product), None)


@message("case.registered", 1)
class CaseRegistered(CaseFacts):
    """The city registered the contract facts of a case (after award)."""


@message("case.updated", 1)
class CaseUpdated(CaseFacts):
    """The contract changed (変更契約): the facts replace the earlier ones.

    A change of 請負金額 alone needs no new guarantee (seed 002, 注2): certificates
    showing an earlier amount of the case stay acceptable.
    """
