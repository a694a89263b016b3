"""Online application system (オンライン申請システム) messages: forms in, corrections out.

After 開札 the contractor sends the city its forms and attachments through the
online application system (CON-2); seed 002 lists them (電子契約利用申出書,
前払金請求書, 現場代理人等選任通知書, 工程表, 電子保証に係る認証キーのお知らせ, ...).
The connector turns each submission into :class:`ApplicationReceived`; the city
answers a wrong or incomplete one with a correction (補正依頼), which the connector
sends back into the application system.
Attachments travel by reference (``schemas.wire.MAX_MESSAGE_BYTES``): the message
carries where to fetch each one and its SHA-256, never the bytes.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.ids import CaseId
from schemas.mail import MailAddress
from schemas.registry import Payload, message
from schemas.rejection import RuleViolation
from schemas.surety import AuthKey, ContractNumber, SuretyProduct

__all__ = [
    "ApplicationReceived",
    "ApplicationSubmitted",
    "AttachmentRef",
    "ContractOfficer",
    "CorrectionRequested",
    "CorrectionSent",
    "EContractApplication",
    "FormKind",
    "SuretyKeyNotice",
    "WorkDomain",
]

ApplicationId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class WorkDomain(enum.StrEnum):
    """Which list of forms applies (seed 002: 申請できる書類)."""

    CONSTRUCTION = "construction"
    """建設工事."""
    CONSTRUCTION_SERVICES = "construction-services"
    """建設工事関連業務 (consulting, surveying, design)."""


class FormKind(enum.StrEnum):
    """申請できる書類 (seed 002). Attachment-only kinds come as a PDF, not as a form."""

    RECYCLING_ANNEX = "recycling-annex"
    """リサイクル別紙."""
    SITE_AGENT_APPOINTMENT = "site-agent-appointment"
    """現場代理人及び主任技術者等選任通知書."""
    SITE_AGENT_CONCURRENT = "site-agent-concurrent"
    """現場代理人兼任届."""
    INTERIM_ADVANCE_CHOICE = "interim-advance-choice"
    """中間前金払と部分払の選択に係る届出書."""
    ADVANCE_PAYMENT_REQUEST = "advance-payment-request"
    """前金払申請書及び前払金請求書."""
    E_CONTRACT_APPLICATION = "e-contract-application"
    """電子契約利用申出書 (CON-1)."""
    WORK_SCHEDULE = "work-schedule"
    """工程表 (attachment)."""
    SURETY_KEY_NOTICE = "surety-key-notice"
    """電子保証に係る認証キーのお知らせ (attachment, SUR-1)."""
    ENGINEER_APPOINTMENT = "engineer-appointment"
    """業務主任技術者及び照査技術者選任通知書 (建設工事関連業務)."""
    QUALIFICATION_PROOF = "qualification-proof"
    """資格を証する書類 (attachment, 建設工事関連業務)."""

    @property
    def label_ja(self) -> str:
        return _FORM_LABELS[self]


_FORM_LABELS = {
    FormKind.RECYCLING_ANNEX: "リサイクル別紙",
    FormKind.SITE_AGENT_APPOINTMENT: "現場代理人及び主任技術者等選任通知書",
    FormKind.SITE_AGENT_CONCURRENT: "現場代理人兼任届",
    FormKind.INTERIM_ADVANCE_CHOICE: "中間前金払と部分払の選択に係る届出書",
    FormKind.ADVANCE_PAYMENT_REQUEST: "前金払申請書及び前払金請求書",
    FormKind.E_CONTRACT_APPLICATION: "電子契約利用申出書",
    FormKind.WORK_SCHEDULE: "工程表",
    FormKind.SURETY_KEY_NOTICE: "電子保証に係る認証キーのお知らせ",
    FormKind.ENGINEER_APPOINTMENT: "業務主任技術者及び照査技術者選任通知書",
    FormKind.QUALIFICATION_PROOF: "資格を証する書類",
}


class AttachmentRef(_Strict):
    """An attached file, by reference: where the application system serves it."""

    attachment_id: str = Field(min_length=1, max_length=64)
    form: FormKind
    filename: str = Field(min_length=1, max_length=255)
    media_type: str = Field(min_length=3, max_length=100)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str = Field(min_length=1, max_length=2000)


class ContractOfficer(_Strict):
    """A person on the 電子契約利用申出書: name and the mail address CloudSign writes to."""

    name: str = Field(min_length=1, max_length=40)
    email: MailAddress


class EContractApplication(_Strict):
    """電子契約利用申出書 (CON-1): one per case; a changed address needs a new one."""

    work_name: str = Field(min_length=1, max_length=200, description="工事名 (物件・委託名).")
    work_site: str = Field(default="", max_length=200, description="工事 (納入・委託) 場所.")
    signatory: ContractOfficer = Field(description="契約締結権限者 (必須).")
    officers: tuple[ContractOfficer, ...] = Field(
        default=(), max_length=3, description="契約担当者 1–3 (任意)."
    )


class SuretyKeyNotice(_Strict):
    """What the 「認証キーのお知らせ」 PDF says (SUR-1), read by the connector."""

    attachment_id: str = Field(min_length=1, max_length=64)
    contract_number: ContractNumber
    auth_key: AuthKey
    product: SuretyProduct | None = None
    work_name: str | None = Field(default=None, max_length=200)
    contractor_name: str | None = Field(default=None, max_length=200)


@message("application.submitted", 1)
class ApplicationSubmitted(Payload):
    """The application system announced a submission (webhook or poll); fetch it.

    Topic: ``Topics.APPLICATION_COMMANDS``. Publish it with the message id
    ``connectors.application.message_id_for(application_id)``: webhook and poll
    then announce one submission once, and the idempotent consumer drops the other.
    """

    application_id: ApplicationId


@message("application.received", 1)
class ApplicationReceived(Payload):
    """One submission from the online application system, as the hub reads it.

    Topic: ``Topics.APPLICATION_EVENTS``; key: the procurement case. ``problems``
    lists what the connector could not read (e.g. a key notice PDF without a
    保証契約番号, SUR-1) so the city can ask for a correction.
    """

    application_id: ApplicationId
    case_id: CaseId
    form: FormKind
    domain: WorkDomain
    company_name: str = Field(min_length=1, max_length=200, description="商号又は名称.")
    representative: str = Field(default="", max_length=100, description="代表者氏名.")
    submitted_at: AwareDatetime
    fields: dict[str, str] = Field(default_factory=dict, description="The form's fields as sent.")
    attachments: tuple[AttachmentRef, ...] = ()
    e_contract: EContractApplication | None = None
    surety_notices: tuple[SuretyKeyNotice, ...] = ()
    problems: tuple[RuleViolation, ...] = ()


@message("application.correction-requested", 1)
class CorrectionRequested(Payload):
    """Ask the contractor to correct a submission (補正依頼). Idempotent on ``correction_id``.

    Topic: ``Topics.APPLICATION_COMMANDS``. Each violation names its rule and says
    in Japanese and English what to correct.
    """

    correction_id: uuid.UUID
    application_id: ApplicationId
    violations: tuple[RuleViolation, ...] = Field(min_length=1)
    comment_ja: str = Field(default="", max_length=2000)


@message("application.correction-sent", 1)
class CorrectionSent(Payload):
    """The application system accepted the correction request. Topic: APPLICATION_EVENTS."""

    correction_id: uuid.UUID
    application_id: ApplicationId
    peer_reference: str = Field(min_length=1, max_length=100)
