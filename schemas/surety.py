"""Electronic surety (電子保証) messages: the D・Sure lookup and its answer (SUR rules).

A contractor submits 保証契約番号 + 認証キー (SUR-1), usually as the 「電子保証にかかる
『認証キー』のお知らせ」 PDF through the online application system. The hub asks D・Sure
(保証確認サービス) for the certificate with them; the certificate carries the fields
SUR-2 compares with the city's contract. The 認証キー is a credential: it travels in
the message (the connector needs it) but never appears in a repr or a log line.
"""

from __future__ import annotations

import enum
import re
from datetime import date, datetime
from typing import Annotated, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from schemas.ids import CaseId
from schemas.registry import Payload, message
from schemas.rejection import RuleViolation
from schemas.sealed import seal, unseal

__all__ = [
    "AuthKey",
    "CertificateForm",
    "ContractNumber",
    "ContractSuretyCompleted",
    "PaperGuaranteeRecorded",
    "PaperGuaranteeTaskClosed",
    "PaperGuaranteeTaskOpened",
    "SuretyAccepted",
    "SuretyCertificate",
    "SuretyCertificateFetched",
    "SuretyCheckRequested",
    "SuretyIssueKind",
    "SuretyKeySource",
    "SuretyLookupRefused",
    "SuretyProduct",
    "SuretyRejected",
]

ContractNumber = Annotated[
    str,
    Field(
        min_length=5,
        max_length=20,
        pattern=r"^[0-9]{5}-[0-9A-Z]{4,8}$",
        description="保証契約番号, half-width, e.g. 31072-0001M (SUR-1).",
    ),
]
AuthKey = Annotated[
    str,
    BeforeValidator(unseal),
    Field(
        min_length=8,
        max_length=32,
        pattern=r"^[0-9A-Za-z]+$",
        repr=False,
        description="認証キー, half-width alphanumerics, e.g. Z28YUE4J3Bux (SUR-1). A credential: "
        "in JSON always sealed as 'sealed:v1:<key id>:<base64url>' (AES-256-GCM, "
        "schemas/sealed.py), never in clear on Kafka or in a dead letter.",
    ),
    PlainSerializer(seal, return_type=str, when_used="json"),
]
Yen = Annotated[int, Field(ge=0, le=10**13, description="Japanese yen, whole.")]


class SuretyProduct(enum.StrEnum):
    """商品 (保証区分): which guarantee the certificate is (SUR-2, SUR-4, SUR-6)."""

    ADVANCE_PAYMENT = "advance-payment"
    """前払金保証: accepted number + key completes the advance-payment request (SUR-6)."""
    PERFORMANCE = "performance"
    """契約保証: accepted number + key completes the contract conclusion step (SUR-6)."""

    @property
    def label_ja(self) -> str:
        return {"advance-payment": "前払金保証", "performance": "契約保証"}[self.value]


class CertificateForm(enum.StrEnum):
    """保証証書の形式: never mixed within one guarantee contract (SUR-3)."""

    ELECTRONIC = "electronic"
    """電子保証 (fetched from D・Sure)."""
    PAPER = "paper"
    """紙の保証証書 (original by the contract date, SUR-5)."""


class SuretyIssueKind(enum.StrEnum):
    """対象: the first certificate or a change to it (SUR-3 keeps the first one's form)."""

    NEW = "new"
    """新規."""
    CHANGE = "change"
    """変更."""


class SuretyKeySource(enum.StrEnum):
    """How the number and key reached the city (SUR-1)."""

    APPLICATION = "application"
    """オンライン申請システム (the PDF attached to an application)."""
    UPLOAD = "upload"
    """電子契約システムへのアップロード."""
    MAIL = "mail"
    """電子メールに添付."""


class SuretyCertificate(BaseModel):
    """One electronic surety certificate as D・Sure shows it: the fields of SUR-2."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    contract_number: ContractNumber
    product: SuretyProduct
    issue_kind: SuretyIssueKind
    form: CertificateForm = CertificateForm.ELECTRONIC
    surety_company: str = Field(min_length=1, max_length=100, description="保証事業会社.")
    procuring_entity_name: str = Field(min_length=1, max_length=100, description="発注者名.")
    work_name: str = Field(min_length=1, max_length=200, description="工事名.")
    contractor_name: str = Field(
        min_length=1, max_length=200, description="受注者 (JVの場合は代表者)."
    )
    jv_name: str | None = Field(default=None, max_length=200, description="JV名.")
    contract_amount: Yen = Field(description="請負金額 (総額).")
    guarantee_amount: Yen = Field(description="保証金額 (総額).")
    guarantee_deadline: date = Field(description="保証期限.")
    work_period_start: date = Field(description="工期 (開始).")
    work_period_end: date = Field(description="工期 (終了).")
    contract_date: date = Field(description="請負契約日.")
    depository: str | None = Field(
        default=None, max_length=100, description="預託金融機関 (前払金保証 only)."
    )
    issued_at: AwareDatetime = Field(description="電子保証発行日時 (arrival at D・Sure).")


@message("surety.check-requested", 1)
class SuretyCheckRequested(Payload):
    """Fetch the certificate for this number and key from D・Sure (SUR-1 → SUR-2).

    Topic: ``Topics.SURETY_COMMANDS``; key: the procurement case.
    """

    contract_number: ContractNumber
    auth_key: AuthKey
    source: SuretyKeySource
    expected_product: SuretyProduct | None = Field(
        default=None, description="The product the city expects, when known (SUR-4)."
    )
    application_id: str | None = Field(
        default=None, max_length=64, description="The application that carried the PDF, if any."
    )


@message("surety.certificate-fetched", 1)
class SuretyCertificateFetched(Payload):
    """D・Sure answered with the certificate; the surety pipeline checks it (SUR-2).

    Topic: ``Topics.SURETY_EVENTS``.
    """

    certificate: SuretyCertificate
    fetched_at: datetime


@message("surety.lookup-refused", 1)
class SuretyLookupRefused(Payload):
    """D・Sure refused the number and key for good (unknown number, wrong key).

    Topic: ``Topics.SURETY_EVENTS``. ``violations`` name SUR rules and tell the
    contractor what to do next in Japanese and English.
    """

    contract_number: ContractNumber
    violations: tuple[RuleViolation, ...] = Field(min_length=1)


GuaranteeNumber = Annotated[str, Field(
    min_length=1, max_length=40, pattern=r"^[0-9A-Za-z][0-9A-Za-z-]*$",
    description="保証契約番号, or the number of a bank guarantee or bond (paper, SUR-5).")]


@message("surety.accepted", 1)
class SuretyAccepted(Payload):
    """The certificate matches the case (SUR-2) and keeps its contract's form (SUR-3).

    Topic: ``Topics.SURETY_EVENTS``. What it completes follows it (SUR-6).
    """

    case_id: CaseId
    contract_number: ContractNumber
    product: SuretyProduct
    issue_kind: SuretyIssueKind
    form: CertificateForm


@message("surety.rejected", 1)
class SuretyRejected(Payload):
    """The certificate was refused; each violation names its rule and the differing field.

    Topic: ``Topics.SURETY_EVENTS``. SUR-2 violations carry ``field`` (e.g.
    ``guarantee_amount``) and say expected vs found in Japanese and English.
    """

    case_id: CaseId
    contract_number: ContractNumber
    product: SuretyProduct | None = None
    violations: tuple[RuleViolation, ...] = Field(min_length=1)


@message("surety.paper-task-opened", 1)
class PaperGuaranteeTaskOpened(Payload):
    """A paper guarantee's original must reach the city by ``due_date`` (SUR-5).

    Not an error: a tracked manual task for the contract office. Topic: SURETY_EVENTS.
    """

    task_id: str = Field(min_length=1, max_length=120)
    case_id: CaseId
    product: SuretyProduct
    due_date: date = Field(description="請負契約日: the original is due by then.")


@message("surety.paper-recorded", 1)
class PaperGuaranteeRecorded(Payload):
    """The contract office records that a paper original arrived (SUR-5). SURETY_COMMANDS."""

    case_id: CaseId
    product: SuretyProduct
    guarantee_number: GuaranteeNumber
    issue_kind: SuretyIssueKind = SuretyIssueKind.NEW
    issuer: str = Field(min_length=1, max_length=100,
                        description="保証事業会社, bank or insurer that issued it.")
    received_on: date

    @model_validator(mode="after")
    def _advance_payment_number(self) -> Self:
        # 前払金保証 comes only from a 保証事業会社 (公共工事の前払金保証事業に関する法律),
        # whose numbers the ERP registration carries (SUR-6).
        if self.product is SuretyProduct.ADVANCE_PAYMENT and not re.fullmatch(
                r"[0-9]{5}-[0-9A-Z]{4,8}", self.guarantee_number):
            raise ValueError("前払金保証 needs a 保証契約番号 like 31072-0001M")
        return self


@message("surety.paper-task-closed", 1)
class PaperGuaranteeTaskClosed(Payload):
    """The paper original arrived; ``late`` when after its due date (SUR-5). SURETY_EVENTS."""

    task_id: str = Field(min_length=1, max_length=120)
    case_id: CaseId
    product: SuretyProduct
    guarantee_number: GuaranteeNumber
    received_on: date
    late: bool = False


@message("surety.contract-surety-completed", 1)
class ContractSuretyCompleted(Payload):
    """契約保証 accepted: the contract conclusion step's surety is done (SUR-6).

    Topic: ``Topics.SURETY_EVENTS``; key: the case. The contract process consumes it.
    """

    case_id: CaseId
    guarantee_number: GuaranteeNumber
    form: CertificateForm
    guarantee_amount: Yen
