"""Mail requests (NTF rules): what the mail connector sends, and what it reports.

The pipelines never write mail text: they ask for a template by name with its
values; the mail connector renders it (Japanese, proper MIME, the NTF-2 notice
that the mail is machine-sent and not to be replied to).
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated

from pydantic import Field

from schemas.registry import Payload, message

__all__ = [
    "ATTACHMENT_LIMIT_BYTES",
    "CARD_NOTICE_VALUE_KEYS",
    "MailAddress",
    "MailFailed",
    "MailKind",
    "MailRequested",
    "MailSent",
    "attachable",
]

ATTACHMENT_LIMIT_BYTES = 6_000_000
"""CON-4: a signed PDF under 6 MB (6,000,000 bytes) is attached to the conclusion mail;
one of that size or more is sent as a download link valid 10 days. The one limit: the
mail connector and the contract documents (``DocumentRef.attachable``) both use it."""


def attachable(size_bytes: int) -> bool:
    """CON-4: whether a document of ``size_bytes`` is attached (else linked)."""
    return size_bytes < ATTACHMENT_LIMIT_BYTES

CARD_NOTICE_VALUE_KEYS = (
    "system_name",  # 電子入札システム / 電子契約システム
    "procuring_entity_name",  # 調達機関
    "company_name",  # 企業名称
    "company_id",  # 企業ID (16 digits)
    "user_id",  # ユーザID / 業者番号
    "contact_name",  # 連絡先氏名
    "contact_address",  # 連絡先住所
    "card_serial",  # the card's serial number
    "card_issuer",  # the card's issuing CA
)
"""The ``values`` of REGISTRATION, CHANGE and RENEWAL mails (REG-10, CHG-4, RNW-9):
the pipelines fill them, the mail connector's templates use them. PROPAGATION_REFUSED
mails carry them too, with ``usable_at``, ``not_usable_at`` and ``reasons``."""

MailAddress = Annotated[
    str,
    Field(
        max_length=100,
        pattern=r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$",
        description="Half-width e-mail address, at most 100 characters (REG-7).",
    ),
]


class MailKind(enum.StrEnum):
    """Which notice: each has its template in the mail connector."""

    REGISTRATION = "registration"
    """利用者登録のお知らせ (REG-10), to the ICカード利用部署 address."""
    CHANGE = "change"
    """利用者変更のお知らせ (CHG-4), to the ICカード利用部署 address."""
    RENEWAL = "renewal"
    """ICカード更新のお知らせ (RNW-9), to the ICカード利用部署 address."""
    PROPAGATION_REFUSED = "propagation-refused"
    """ICカードを利用できない調達機関のお知らせ (REG-9, CHG-3, RNW-8): another entity's own
    policy refused the card; where it is and is not usable, to the ICカード利用部署."""
    NOMINATION = "nomination"
    """指名通知 (NTF-1), to the 代表窓口 address."""
    AWARD = "award"
    """落札のお知らせ (NTF-1), to the ICカード利用部署 address."""
    CONTRACT_REVIEW = "contract-review"
    """電子契約の確認依頼 with a review link (CON-2, CON-3)."""
    CONTRACT_CONCLUDED = "contract-concluded"
    """電子契約締結のお知らせ, signed PDF attached or linked (CON-4)."""
    SURETY_RESULT = "surety-result"
    """電子保証の確認結果 (SUR-2, SUR-6)."""
    GENERIC = "generic"
    """A notice whose subject and body lines are given in ``values``."""


@message("mail.requested", 1)
class MailRequested(Payload):
    """Send one notice. Idempotent on ``mail_id``: a repeat is not sent twice."""

    mail_id: uuid.UUID
    kind: MailKind
    to: tuple[MailAddress, ...] = Field(min_length=1, max_length=10)
    values: dict[str, str] = Field(
        default_factory=dict, description="Template values, e.g. 調達機関, 企業名称, 連絡先氏名."
    )
    attachment_ref: str | None = Field(
        default=None, description="Where the document to attach (or link, CON-4) is stored."
    )


@message("mail.sent", 1)
class MailSent(Payload):
    mail_id: uuid.UUID
    smtp_message_id: str


@message("mail.failed", 1)
class MailFailed(Payload):
    mail_id: uuid.UUID
    reason: str
