"""Loading and saving contract cases and documents (tables in :mod:`.models`).

Documents are content-addressed: storing the same PDF twice keeps one row, and a
reference is resolved only when the bytes still hash to it (CON-5: an edited PDF is not
the one that was signed). References to them read ``contract-doc:<sha256>``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlmodel import Session, select

from pipelines.contract.models import CaseRow, DocumentRow
from pipelines.contract.state import PARTIES, CaseState
from schemas.contract import DocumentRef
from schemas.text import trade_name_key

__all__ = [
    "DOC_SCHEME",
    "DocumentMissingError",
    "case_by_cloudsign_document",
    "case_by_cloudsign_request",
    "case_by_review_link",
    "get_document",
    "load_case",
    "put_document",
    "save_case",
    "stored_bytes",
]

DOC_SCHEME = "contract-doc:"


class DocumentMissingError(LookupError):
    """No stored document matches the reference (unknown, or not the same bytes: CON-5)."""


def put_document(session: Session, filename: str, content: bytes, now: datetime) -> DocumentRef:
    """Keep ``content`` (once) and return the reference messages carry."""
    digest = hashlib.sha256(content).hexdigest()
    if session.get(DocumentRow, digest) is None:
        session.add(DocumentRow(sha256=digest, filename=filename, size_bytes=len(content),
                                content=content, created_at=now))
        session.flush()
    return DocumentRef(uri=f"{DOC_SCHEME}{digest}", filename=filename,
                       size_bytes=len(content), sha256=digest)


def get_document(session: Session, ref: DocumentRef) -> bytes:
    row = session.get(DocumentRow, ref.sha256)
    if row is None or ref.uri != f"{DOC_SCHEME}{ref.sha256}":
        raise DocumentMissingError(f"no contract document {ref.filename} ({ref.sha256[:12]}…)")
    if hashlib.sha256(row.content).hexdigest() != ref.sha256:
        raise DocumentMissingError(f"CON-5: {ref.filename} changed since it was stored")
    return row.content


def stored_bytes(session: Session, ref: DocumentRef) -> bytes | None:
    """The archived bytes under ``ref``'s hash as they are now, unchecked (for re-validation,
    which must show an edit rather than refuse to look, CON-5)."""
    row = session.get(DocumentRow, ref.sha256)
    return None if row is None else row.content


def load_case(session: Session, case_id: str) -> CaseState | None:
    row = session.get(CaseRow, case_id)
    return None if row is None else CaseState.model_validate_json(json.dumps(row.state))


def case_by_review_link(session: Session, link_id: str) -> CaseState | None:
    """The case whose current review link is ``link_id`` (CON-3: older links find nothing)."""
    row = session.exec(select(CaseRow).where(CaseRow.review_link_id == link_id)).first()
    return None if row is None else CaseState.model_validate_json(json.dumps(row.state))


def case_by_cloudsign_request(session: Session, request_id: str) -> str | None:
    return session.exec(select(CaseRow.case_id).where(
        CaseRow.cloudsign_request_id == request_id)).first()


def case_by_cloudsign_document(session: Session, document_id: str) -> CaseState | None:
    """The case whose current CloudSign send is ``document_id`` (as ContractSent named it);
    ``None`` for a document the hub did not send, or one a later send superseded."""
    row = session.exec(select(CaseRow).where(
        CaseRow.cloudsign_document_id == document_id)).first()
    return None if row is None else CaseState.model_validate_json(json.dumps(row.state))


def save_case(session: Session, state: CaseState) -> None:
    row = session.get(CaseRow, state.case_id) or CaseRow(
        case_id=state.case_id, procuring_entity=state.procuring_entity, route=state.route.value,
        status=state.status.value, subject=state.subject, amount_yen=state.amount_yen,
        contractor_user_id=state.contractor_user_id, contractor_name=state.contractor_name,
        contractor_key=trade_name_key(state.contractor_name),
        city_name=state.city_name, opened_at=state.opened_at, updated_at=state.updated_at,
        state={})
    row.status = state.status.value
    row.agreed = state.agreed
    row.parties = PARTIES
    row.updated_at = state.updated_at
    row.concluded_at = state.concluded_at
    row.signing_job_id = state.signing_job_id
    row.review_link_id = str(state.link.link_id) if state.link else None
    row.cloudsign_request_id = (str(state.cloudsign_request_id)
                                if state.cloudsign_request_id else None)
    row.cloudsign_document_id = state.cloudsign_document_id
    current = state.signed or state.contractor_signed or state.document
    row.document_sha256 = current.sha256 if current else None
    row.state = state.model_dump(mode="json")
    session.add(row)
