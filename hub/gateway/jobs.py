"""Signing jobs (署名依頼): documents a contractor signs at the edge with its IC card.

The hub creates a job for a user ID (:func:`create_job`); the contractor's agent lists
and fetches only its own jobs of the entity its session was opened for (another user's
job is "not found", not "forbidden", so nothing leaks). Inside an announced maintenance
window that stops signing (WIN-2) a signed PDF is refused with the window's end, and
the job stays pending. A returned PDF is accepted only when pyHanko validates it against
the trust roots (PAdES B-T, whole file, CON-5), it was made by a card of the same user ID
registered and active at the session's entity and domain (PIN-2), and the signed
revision is the very document of the job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from hub.gateway.config import GatewayConfig
from hub.gateway.errors import GatewayRefusalError, refusal
from hub.gateway.models import SigningJobRow, SigningJobStatus
from hub.gateway.sessions import CardSession
from hub.gateway.validation import SignatureRejectedError, validate_signed_pdf
from pipelines.registration.common import maintenance_violation
from pipelines.registration.policy import WindowStop
from pipelines.registration.queries import find_active_card

__all__ = ["accept_signed", "create_job", "get_job", "list_jobs"]

MAX_PDF = 50 * 1024 * 1024


def create_job(session: Session, *, network: str, user_id: str, procuring_entity: str,
               subject: str, parties: list[str], amount_yen: int, document: bytes,
               now: dt.datetime) -> SigningJobRow:
    """Queue ``document`` for ``user_id`` to sign (the contract set of CON-2)."""
    row = SigningJobRow(
        id=uuid.uuid4().hex, network=network, user_id=user_id,
        procuring_entity=procuring_entity, subject=subject, parties=parties,
        amount_yen=amount_yen, document=document,
        document_sha256=hashlib.sha256(document).hexdigest(), status=SigningJobStatus.PENDING,
        created_at=now,
    )
    session.add(row)
    return row


# The PDFs stay in the database unless asked for: a job's description does not need
# them, and a megabyte of bytea costs more to fetch than the rest of the request.
_WITHOUT_PDFS = (defer(SigningJobRow.document),  # type: ignore[arg-type]
                 defer(SigningJobRow.signed_document))  # type: ignore[arg-type]


def list_jobs(session: Session, who: CardSession) -> list[SigningJobRow]:
    """The caller's jobs of the entity its session was opened for (without their PDFs)."""
    return list(session.exec(
        select(SigningJobRow).options(*_WITHOUT_PDFS)
        .where(SigningJobRow.network == who.network, SigningJobRow.user_id == who.user_id,
               SigningJobRow.procuring_entity == who.procuring_entity)
        .order_by(SigningJobRow.created_at)  # type: ignore[arg-type]
    ))


def get_job(session: Session, who: CardSession, job_id: str, *,
            pdfs: bool = True) -> SigningJobRow:
    """The caller's job ``job_id``, else 404; ``pdfs=False`` leaves its PDFs unread."""
    row = session.get(SigningJobRow, job_id, options=() if pdfs else _WITHOUT_PDFS)
    if row is None or (row.network, row.user_id, row.procuring_entity) != (
            who.network, who.user_id, who.procuring_entity):
        raise refusal(404, "PIN-2", ("署名依頼が見つかりません。", "No such signing job."),
                      ("一覧を更新してください。", "Refresh the job list."))
    return row


def _signed_revision_is(session: Session, job: SigningJobRow, signed: bytes) -> bool:
    # The signed file must start with the job's document: signing appends an incremental
    # update and never rewrites what came before, and the validation already showed that
    # the signature covers the whole file. The document is the one of document_sha256 (the
    # hash the agent checked and showed before signing), so its length and that hash
    # decide, without reading the document back.
    length = session.exec(select(sa.func.length(SigningJobRow.document))
                          .where(SigningJobRow.id == job.id)).one()
    return hashlib.sha256(signed[:length]).hexdigest() == job.document_sha256


def accept_signed(cfg: GatewayConfig, who: CardSession, job_id: str,
                  signed: bytes) -> SigningJobRow:
    """Validate and store the signed PDF of a job (see the module docstring)."""
    if len(signed) > MAX_PDF:
        raise refusal(413, "CON-5", ("PDFが大きすぎます。", "The PDF is too large."),
                      ("発注者にお問い合わせください。", "Contact the entity."))
    policy = cfg.book.get(who.procuring_entity, who.system)
    if policy is not None and (closed := maintenance_violation(
            policy, cfg.now(), WindowStop.SIGNING)) is not None:
        raise GatewayRefusalError(503, [closed])  # WIN-2: the job stays pending until then
    with cfg.transaction() as session:
        job = get_job(session, who, job_id, pdfs=False)
        if job.status != SigningJobStatus.PENDING:
            raise refusal(409, "CON-5", ("この文書は署名済みです。", "This job is already signed."),
                          ("一覧を更新してください。", "Refresh the job list."))
        try:
            checked = validate_signed_pdf(signed, cfg.signature_roots)
        except SignatureRejectedError as exc:
            raise GatewayRefusalError(422, [exc.violation]) from exc
        result = (checked.signer_issuer, str(checked.signer_serial))
        signer = find_active_card(session, result[0], result[1], cfg.now(),
                                  entity=who.procuring_entity, domain=who.domain)
        if signer is None or (signer.network, signer.user_id) != (who.network, who.user_id):
            raise refusal(422, "PIN-2",
                          ("署名したICカードがこの利用者の登録済みカードではありません。",
                           "The signing card is not a registered card of this user ID."),
                          ("ご自身の登録済みICカードで署名し直してください。",
                           "Sign again with your own registered IC card."))
        if not _signed_revision_is(session, job, signed):
            raise refusal(422, "CON-5",
                          ("署名された文書が依頼された文書と一致しません。",
                           "The signed document is not the document of this job."),
                          ("依頼された文書に署名し直してください。",
                           "Sign the document of this job again."))
        job.status = SigningJobStatus.SIGNED
        job.signed_document = signed
        job.signed_at = cfg.now()
        job.signer_issuer, job.signer_serial = result
        session.add(job)
        if cfg.on_signed is not None:
            session.flush()
            cfg.on_signed(session, job, job.signed_at)
        return job

