"""E-contract conclusion (電子契約の締結) messages of the hub's own process (CON-1 … CON-7).

The contract process manager (pipelines/contract) follows one case from 開札 to the
signed PDF both parties keep (CON-2): the 電子契約利用申出書 (CON-1), the contract set the
city prepares, the contractor's review through an expiring link (CON-3), agreement,
rejection or forwarding, the contractor's IC-card signature, the city's agreement and
its own PAdES signature, and the conclusion mails (CON-4). Where a city sends contracts
through CloudSign instead, the same case is driven by schemas/cloudsign.py's messages.

Commands travel on ``Topics.CONTRACT_COMMANDS``, events on ``Topics.CONTRACT_EVENTS``,
keyed by the case. Message types read ``econtract.*`` so they never clash with
CloudSign's ``contract.*``. Documents travel by reference (:class:`DocumentRef`).
"""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.cloudsign import DocumentRef
from schemas.ids import CaseId
from schemas.mail import MailAddress
from schemas.registry import Payload, message
from schemas.rejection import RuleViolation

__all__ = [
    "MAX_CONTRACT_OFFICERS",
    "CaseId",
    "CityAgreed",
    "CitySignatureApplied",
    "ContractCaseOpened",
    "ContractForwarded",
    "ContractParty",
    "ContractReviewLinkExpired",
    "ContractReviewLinkSent",
    "ContractRoute",
    "ContractSetPrepared",
    "ContractStatus",
    "ContractStepRecorded",
    "ContractStepRejected",
    "ContractorAgreed",
    "ContractorRejected",
    "ContractorSignatureAccepted",
    "DocumentRef",
    "ElectronicContractApplication",
    "ElectronicContractConcluded",
    "ReviewLinkExpiryReached",
    "ReviewLinkResendRequested",
]

MAX_CONTRACT_OFFICERS = 3
"""CON-1: at most three 契約担当者 besides the 契約締結権限者."""

Yen = Annotated[int, Field(ge=0, le=10**13, description="Japanese yen, whole.")]


class ContractRoute(enum.StrEnum):
    """How the city concludes contracts (its policy, per case)."""

    CARD = "card"
    """The contractor signs with its IC card (card agent), the city with its own signer."""
    CLOUDSIGN = "cloudsign"
    """Through CloudSign (立会人型): the connector sends, CloudSign signs."""


class ContractStatus(enum.StrEnum):
    """Where a case stands in the CON-2 flow."""

    OPENED = "opened"
    """開札 done: the contractor is known; waiting for the 電子契約利用申出書."""
    APPLIED = "applied"
    """申出書 accepted (CON-1); waiting for the city's contract set."""
    REVIEW = "review"
    """Contract set sent for review; a review link is out (CON-3)."""
    CONTRACTOR_AGREED = "contractor-agreed"
    """The contractor agreed; its IC-card signature is awaited (gateway signing job)."""
    CONTRACTOR_SIGNED = "contractor-signed"
    """The contractor's signature was validated; the city's agreement is awaited."""
    CITY_AGREED = "city-agreed"
    """The city agreed; its own signer is to sign (PAdES B-LT)."""
    SENT_TO_CLOUDSIGN = "sent-to-cloudsign"
    """CloudSign route: the set is with CloudSign, agreements are collected there."""
    REJECTED = "rejected"
    """The contractor rejected the set; the city may prepare a new one."""
    CONCLUDED = "concluded"
    """締結完了: both parties agreed and signed; both keep the signed PDF."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class ContractParty(_Strict):
    """A person taking part: name and the e-mail address the 申出書 declares (CON-1)."""

    name: str = Field(min_length=1, max_length=40)
    email: MailAddress


@message("econtract.case-opened", 1)
class ContractCaseOpened(Payload):
    """開札 done: the case, its contractor and the city's side, and the route (CON-2)."""

    case_id: CaseId
    subject: str = Field(min_length=1, max_length=200, description="工事名・件名.")
    amount_yen: Yen
    contractor_network: str = Field(min_length=1, max_length=64)
    contractor_user_id: str = Field(min_length=1, max_length=20)
    contractor_name: str = Field(min_length=1, max_length=200, description="商号又は名称.")
    city_name: str = Field(min_length=1, max_length=100, description="調達機関の名称.")
    city_officer: ContractParty
    route: ContractRoute = ContractRoute.CARD
    surety_required: bool = Field(default=False, description="契約保証 needed (SUR-6).")
    opened_at: AwareDatetime
    contractor_id: str | None = Field(
        default=None, pattern=r"^[0-9]{16}$",
        description="受注者の企業ID (16 digits) for the ERP's 契約登録; when absent the hub "
        "reads it from the contractor's registration (network + user ID).")
    period_start: date | None = Field(default=None, description="工期 (開始), for the ERP.")
    period_end: date | None = Field(default=None, description="工期 (終了), for the ERP.")

    @model_validator(mode="after")
    def _period_in_order(self) -> Self:
        if self.period_start and self.period_end and self.period_end < self.period_start:
            raise ValueError("工期: the end is before the start")
        return self


@message("econtract.application", 1)
class ElectronicContractApplication(Payload):
    """電子契約利用申出書 (CON-1): 契約締結権限者 (required) and up to three 契約担当者.

    Missing or surplus people are not refused by the schema but by the rules, so the
    contractor gets a CON-1 answer saying what to correct. A new 申出書 for the same case
    replaces the old one (a changed address means a new 申出書).
    """

    case_id: CaseId
    work_name: str = Field(min_length=1, max_length=200, description="工事名 (物件・委託名).")
    work_place: str = Field(default="", max_length=200, description="工事(納入・委託)場所.")
    authorized: ContractParty | None = Field(description="契約締結権限者 (必須).")
    officers: tuple[ContractParty, ...] = Field(default=(), max_length=10,
                                                description="契約担当者1〜3.")
    applied_at: AwareDatetime


@message("econtract.set-prepared", 1)
class ContractSetPrepared(Payload):
    """The city prepared the contract set (a PDF in the contract archive) (CON-2)."""

    case_id: CaseId
    title: str = Field(min_length=1, max_length=200)
    document: DocumentRef


@message("econtract.review-link-resend-requested", 1)
class ReviewLinkResendRequested(Payload):
    """The contractor asks for a new review link (CON-3), from a declared address."""

    case_id: CaseId
    requested_by: MailAddress


@message("econtract.review-link-expiry-reached", 1)
class ReviewLinkExpiryReached(Payload):
    """The timeout job: this review link's time is up (CON-3)."""

    case_id: CaseId
    link_id: uuid.UUID


@message("econtract.contractor-agreed", 1)
class ContractorAgreed(Payload):
    """書類の内容に同意: the contractor agrees through its review link (CON-2, CON-3)."""

    case_id: CaseId
    link_id: uuid.UUID
    by: MailAddress


@message("econtract.contractor-rejected", 1)
class ContractorRejected(Payload):
    """同意せず却下: the contractor rejects the set, with its reason (CON-2)."""

    case_id: CaseId
    link_id: uuid.UUID
    by: MailAddress
    reason: str = Field(min_length=1, max_length=1000)


@message("econtract.forwarded", 1)
class ContractForwarded(Payload):
    """この書類を転送する: the review goes to another person of the 申出書 (CON-1, CON-2)."""

    case_id: CaseId
    link_id: uuid.UUID
    by: MailAddress
    to: MailAddress


@message("econtract.contractor-signed", 1)
class ContractorSignatureAccepted(Payload):
    """The gateway validated the contractor's IC-card signature (PAdES B-T, CON-5, PIN-2)."""

    case_id: CaseId
    signing_job_id: str = Field(min_length=1, max_length=64)
    document: DocumentRef
    signer_issuer: str = Field(min_length=1, max_length=200)
    signer_serial: str = Field(min_length=1, max_length=50)
    signed_at: AwareDatetime


@message("econtract.city-agreed", 1)
class CityAgreed(Payload):
    """The city's officer agrees to the contractor-signed set (CON-2)."""

    case_id: CaseId
    by: MailAddress


@message("econtract.city-signed", 1)
class CitySignatureApplied(Payload):
    """The city's own signer signed (PAdES B-LT with timestamp, CON-2, CON-7)."""

    case_id: CaseId
    document: DocumentRef
    signer_subject: str = Field(min_length=1, max_length=300)
    signed_at: AwareDatetime


@message("econtract.review-link-sent", 1)
class ContractReviewLinkSent(Payload):
    """A review link went out (CON-3); older links of the case no longer work."""

    case_id: CaseId
    link_id: uuid.UUID
    to: tuple[MailAddress, ...] = Field(min_length=1)
    expires_at: AwareDatetime


@message("econtract.review-link-expired", 1)
class ContractReviewLinkExpired(Payload):
    """A review link expired unused (CON-3): the contractor may ask for a new one."""

    case_id: CaseId
    link_id: uuid.UUID


@message("econtract.step-recorded", 1)
class ContractStepRecorded(Payload):
    """A case moved on: its new status and agreements so far (CON-6: agreed n/m)."""

    case_id: CaseId
    status: ContractStatus
    step: str = Field(min_length=1, max_length=100, description="The command that moved it.")
    agreed: int = Field(ge=0)
    parties: int = Field(ge=1)
    at: AwareDatetime


@message("econtract.step-rejected", 1)
class ContractStepRejected(Payload):
    """A step was refused, naming the CON rule and what to do next; nothing changed."""

    case_id: CaseId
    step: str = Field(min_length=1, max_length=100)
    violations: tuple[RuleViolation, ...] = Field(min_length=1)


@message("econtract.concluded", 1)
class ElectronicContractConcluded(Payload):
    """締結完了 (CON-2): the signed PDF is archived (CON-7) and mailed to both (CON-4)."""

    case_id: CaseId
    route: ContractRoute
    concluded_at: AwareDatetime
    document: DocumentRef
