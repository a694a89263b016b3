"""CloudSign Web API's documentModel ↔ canonical contract messages (CON-2, CON-6). Pure.

The subset of CloudSign's Web API (its OpenAPI "クラウドサイン Web API 仕様書" 0.31.0,
vendored in tests/data/) the hub uses: a document has ``id``, ``title``, ``status``
(0 下書き, 1 先方確認中, 2 締結済, 3 取消・却下, 4 テンプレート, 13 インポート書類),
``participants`` (``order`` 0 is the sender) and ``files``. Requests are form-encoded,
as the API takes them. The document's ``note`` is a memo people can edit in CloudSign's
screens: the hub writes the case number there for them, and the send's request key
(``依頼番号 <request id>``), by which a document created just before a crash is found
again (connectors/cloudsign/sends.py); the case is found by the document id the hub
keeps (``pipelines.contract``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.cloudsign import (
    ContractDeclined,
    ContractParticipant,
    ContractSendRequested,
    SignedDocumentStatus,
)
from schemas.rejection import RuleViolation

__all__ = [
    "PeerDocument",
    "PeerFile",
    "PeerFormatError",
    "PeerParticipant",
    "declined",
    "document_form",
    "document_from_peer",
    "participant_form",
    "request_key",
]


class PeerFormatError(ValueError):
    """CloudSign's answer is not the documentModel we need."""


class _Lenient(BaseModel):
    # CloudSign adds fields over time (its change policy): read what we need, keep going.
    model_config = ConfigDict(extra="ignore", frozen=True)


class PeerParticipant(_Lenient):
    id: str
    email: str
    name: str = ""
    order: int = 0
    status: int = 0
    processed_at: datetime | None = None


class PeerFile(_Lenient):
    id: str
    name: str
    order: int = 0


class PeerDocument(_Lenient):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    title: str
    status: SignedDocumentStatus
    participants: list[PeerParticipant] = Field(default_factory=list)
    files: list[PeerFile] = Field(default_factory=list)
    note: str = ""
    updated_at: datetime | None = None
    last_processed_at: datetime | None = None


def document_from_peer(body: Any) -> PeerDocument:
    try:
        return PeerDocument.model_validate(body)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) or "(root)"
                          for e in exc.errors()[:3])
        raise PeerFormatError(f"not a CloudSign document: {where}") from None


def document_form(command: ContractSendRequested) -> dict[str, str]:
    """``POST /documents``. The note is a memo for the city's staff in CloudSign's
    screens (the case number) and the request key the send is found again by."""
    return {"title": command.title, "message": command.message,
            "note": f"案件番号 {command.case_id} {request_key(command.request_id)}"}


def request_key(request_id: uuid.UUID) -> str:
    """What a document's note carries so that its send can be found by it."""
    return f"依頼番号 {request_id}"


def participant_form(participant: ContractParticipant) -> dict[str, str]:
    """``POST /documents/{id}/participants``, one per party in agreement order. The
    organization is optional and at most 64 characters in CloudSign (participantModel):
    left out when empty, cut to 64 otherwise (a display label)."""
    form = {"email": participant.email, "name": participant.name}
    if participant.organization:
        form["organization"] = participant.organization[:64]
    return form


def declined(document: PeerDocument, case_id: str, at: datetime) -> ContractDeclined:
    """A document CloudSign shows as 取消・却下 (status 3) → ContractDeclined (CON-2)."""
    return ContractDeclined(
        document_id=document.id, case_id=case_id, title=document.title, declined_at=at,
        violations=(RuleViolation(
            rule_id="CON-2",
            message_ja="契約書類が却下または取り消されました。",
            message_en="The contract documents were rejected or withdrawn.",
            next_step_ja="却下の理由を受注者に確認し、必要なら書類を修正して送信し直してください。",
            next_step_en="Ask the contractor why, correct the documents if needed and "
                         "send them again.",
        ),),
    )
