"""E-contract (電子契約) messages exchanged with CloudSign (CON rules).

The city prepares the contract set and sends it through CloudSign to the
contractor's 契約締結権限者 and 契約担当者 (CON-1, CON-2); each party agrees in turn;
CloudSign signs and timestamps the PDF. The hub learns of the conclusion from
CloudSign's webhook, which it trusts only after re-reading the document through
the API, then keeps the signed PDF and the 合意締結証明書 (CON-6, CON-7).
Documents travel by reference (:class:`DocumentRef`), never inline.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.ids import CaseId
from schemas.mail import MailAddress, attachable
from schemas.registry import Payload, message
from schemas.rejection import RuleViolation

__all__ = [
    "ContractCompletionNotified",
    "ContractConcluded",
    "ContractDeclined",
    "ContractParticipant",
    "ContractSendRequested",
    "ContractSent",
    "DocumentRef",
    "SignedDocumentStatus",
]


DocumentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class SignedDocumentStatus(enum.IntEnum):
    """CloudSign's document ``status`` (its Web API's numbering)."""

    DRAFT = 0
    """下書き."""
    IN_PROGRESS = 1
    """先方確認中 (sent, waiting for agreements)."""
    CONCLUDED = 2
    """締結完了."""
    CANCELLED = 3
    """取消、または却下 (withdrawn by the sender or rejected by a party)."""
    TEMPLATE = 4
    """テンプレート."""
    IMPORTED = 13
    """インポート書類 (a document concluded elsewhere and imported; never sent by the hub)."""


class DocumentRef(_Strict):
    """A stored document: where it is, what it is called, its size and SHA-256."""

    uri: str = Field(min_length=1, max_length=2000)
    filename: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def attachable(self) -> bool:
        """CON-4: may be attached to a mail (else sent as a download link)."""
        return attachable(self.size_bytes)


class ContractParticipant(_Strict):
    """One party who reviews and agrees, in order (契約締結権限者, 契約担当者, the city)."""

    name: str = Field(min_length=1, max_length=40)
    email: MailAddress
    organization: str = Field(default="", max_length=100)


@message("contract.send-requested", 1)
class ContractSendRequested(Payload):
    """Create the document in CloudSign, upload the set, add the parties, send it (CON-2).

    Topic: ``Topics.CONTRACT_COMMANDS``; idempotent on ``request_id``.
    """

    request_id: uuid.UUID
    case_id: CaseId
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(default="", max_length=2000)
    files: tuple[DocumentRef, ...] = Field(min_length=1, max_length=10)
    participants: tuple[ContractParticipant, ...] = Field(min_length=1, max_length=10)


@message("contract.sent", 1)
class ContractSent(Payload):
    """CloudSign accepted and sent the document. Topic: ``Topics.CONTRACT_EVENTS``."""

    request_id: uuid.UUID
    document_id: DocumentId
    sent_at: AwareDatetime


@message("contract.completion-notified", 2)
class ContractCompletionNotified(Payload):
    """CloudSign's webhook named this document (concluded, rejected or bounced).

    Topic: ``Topics.CONTRACT_COMMANDS``, keyed by the case. The hub publishes it only for
    a document its own case state holds (``case_id`` is that case, found by the
    document id); ``status`` is what the webhook claimed, never believed: the CloudSign
    connector re-reads the document through the API. Version 2 added ``case_id`` and
    ``status``.
    """

    document_id: DocumentId
    case_id: str = Field(min_length=1, max_length=100)
    status: int = Field(ge=0, le=99)


@message("contract.concluded", 1)
class ContractConcluded(Payload):
    """Every party agreed; the signed PDFs and the 合意締結証明書 are stored (CON-4, CON-6).

    Topic: ``Topics.CONTRACT_EVENTS``. Published only after the document was
    re-read through the API (the webhook itself is not trusted).
    """

    document_id: DocumentId
    case_id: CaseId
    title: str = Field(min_length=1, max_length=200)
    concluded_at: AwareDatetime
    signed_files: tuple[DocumentRef, ...] = Field(min_length=1)
    certificate: DocumentRef


@message("contract.declined", 1)
class ContractDeclined(Payload):
    """The document was rejected by a party or withdrawn (CON-2). Topic: CONTRACT_EVENTS."""

    document_id: DocumentId
    case_id: CaseId
    title: str = Field(min_length=1, max_length=200)
    declined_at: AwareDatetime
    violations: tuple[RuleViolation, ...] = Field(min_length=1)
