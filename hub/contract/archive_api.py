"""HTTP side of the contract process for the city's staff (CON-2, CON-5, CON-6, CON-7).

``POST /contracts/{case}/contract-set`` (a PDF) archives the contract set and sends it for
review; ``POST /contracts/{case}/city-agreement`` is the city's agreement; both publish
the process's commands through the outbox and answer 202 with the request id.

``GET /contracts`` lists and searches (date, amount, counterparty, status);
``GET /contracts/{case}/certificate`` gives the 合意締結証明書 as JSON and
``…/certificate.pdf`` as a PDF; ``GET /contracts/{case}/document`` the signed PDF;
``POST /contracts/{case}/validation`` re-validates its signatures now. The wiring mounts it
behind the city's staff authentication (:mod:`hub.staff`).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# definition time, and they name the router's local session dependency.
import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from cryptography import x509
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.contract.review_api import AcceptedOut, WhoIn, publish_step, refuse_early
from hub.documents.store import DocumentNotFoundError, DocumentStore, SqlDocumentStore
from pipelines.contract import texts
from pipelines.contract.archive import (
    ConclusionCertificate,
    ContractListItem,
    NotConcludedError,
    certificate_pdf,
    conclusion_certificate,
    revalidate,
    search_contracts,
)
from pipelines.contract.state import CaseState
from pipelines.contract.store import DOC_SCHEME, load_case
from schemas.contract import CityAgreed, ContractSetPrepared, ContractStatus, DocumentRef
from schemas.envelope import utc_now
from schemas.registry import Payload

__all__ = ["ContractQuery", "ValidationOut", "archive_router"]

PRODUCER = "hub.contract.staff"


async def _body(request: Request) -> bytes:
    return await request.body()


MAX_AMOUNT = 2**63 - 1
"""The largest amount the archive's BIGINT column holds: a larger bound is a 422, not a
database error."""


class ContractQuery(BaseModel):
    """Search filters (CON-7): conclusion date range, amount range, counterparty, status."""

    concluded_from: datetime | None = None
    concluded_to: datetime | None = None
    amount_min: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    amount_max: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    counterparty: str | None = Field(default=None, max_length=200)
    status: ContractStatus | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class ValidationOut(BaseModel):
    case_id: str
    valid: bool
    signatures: list[dict[str, object]]
    problems: list[str]


def archive_router(engine: Engine, roots: tuple[x509.Certificate, ...],
                   clock: Callable[[], datetime] = utc_now,
                   store: DocumentStore | None = None) -> APIRouter:
    """``store``: the shared document store the archive reads and the contract sets go to
    (default: the database's, :class:`~hub.documents.SqlDocumentStore`)."""
    router = APIRouter(prefix="/contracts", tags=["contract archive"])
    docs: DocumentStore = store or SqlDocumentStore(engine)

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    def _not_concluded(exc: NotConcludedError) -> HTTPException:
        return HTTPException(404, detail={
            "rule_id": "CON-6", "message_ja": "締結済みの契約がありません。",
            "message_en": str(exc), "next_step_ja": "契約一覧で案件の状態を確認してください。",
            "next_step_en": "Check the case's status in the contract list."})

    @router.get("")
    def contracts(db: Annotated[Session, Depends(session)],
                  q: Annotated[ContractQuery, Query()]) -> list[ContractListItem]:
        return search_contracts(db, **q.model_dump())

    @router.get("/{case_id}/certificate")
    def certificate(case_id: str,
                    db: Annotated[Session, Depends(session)]) -> ConclusionCertificate:
        try:
            return conclusion_certificate(db, case_id, roots, clock())
        except NotConcludedError as exc:
            raise _not_concluded(exc) from exc

    @router.get("/{case_id}/certificate.pdf")
    def certificate_as_pdf(case_id: str, db: Annotated[Session, Depends(session)]) -> Response:
        try:
            cert = conclusion_certificate(db, case_id, roots, clock())
        except NotConcludedError as exc:
            raise _not_concluded(exc) from exc
        return Response(certificate_pdf(cert), media_type="application/pdf")

    @router.get("/{case_id}/document")
    def document(case_id: str, db: Annotated[Session, Depends(session)]) -> Response:
        state = load_case(db, case_id)
        if state is None or state.signed is None:
            raise _not_concluded(NotConcludedError(f"case {case_id} has no signed document"))
        try:
            content = docs.get(state.signed.sha256)
        except DocumentNotFoundError as exc:
            raise _not_concluded(NotConcludedError(str(exc))) from exc
        return Response(content, media_type="application/pdf")

    def publish(state: CaseState, payload: Payload) -> AcceptedOut:
        return publish_step(engine, state, payload, clock(), PRODUCER)

    def known(case_id: str, db: Session) -> CaseState:
        state = load_case(db, case_id)
        if state is None:
            raise HTTPException(404, detail={"violations": [texts.no_case(case_id).model_dump()]})
        return state

    @router.post("/{case_id}/contract-set", status_code=202, openapi_extra={
        "requestBody": {"content": {"application/pdf": {
            "schema": {"type": "string", "format": "binary"}}}, "required": True}})
    def contract_set(case_id: str, title: Annotated[str, Query(min_length=1, max_length=200)],
                     pdf: Annotated[bytes, Depends(_body)],
                     db: Annotated[Session, Depends(session)]) -> AcceptedOut:
        """The city's contract set (a PDF), archived and sent for review (CON-2)."""
        state = known(case_id, db)
        if not pdf.startswith(b"%PDF-"):
            raise HTTPException(422, detail="the contract set must be a PDF")
        digest = hashlib.sha256(pdf).hexdigest()
        command = ContractSetPrepared(case_id=case_id, title=title, document=DocumentRef(
            uri=f"{DOC_SCHEME}{digest}", filename=f"{case_id}.pdf", size_bytes=len(pdf),
            sha256=digest))
        refuse_early(state, command, clock())  # before keeping a set nobody may review
        docs.put(pdf, filename=command.document.filename)
        return publish(state, command)

    @router.post("/{case_id}/city-agreement", status_code=202)
    def city_agreement(case_id: str, body: WhoIn,
                       db: Annotated[Session, Depends(session)]) -> AcceptedOut:
        """The city's officer agrees (CON-2)."""
        return publish(known(case_id, db), CityAgreed(case_id=case_id, by=body.by))

    @router.post("/{case_id}/validation")
    def validation(case_id: str, db: Annotated[Session, Depends(session)]) -> ValidationOut:
        try:
            report = revalidate(db, case_id, roots)
        except NotConcludedError as exc:
            raise _not_concluded(exc) from exc
        return ValidationOut(case_id=case_id, valid=report.valid, problems=list(report.problems),
                             signatures=[{"field_name": s.field_name, "signer": s.signer,
                                          "timestamped_at": s.timestamped_at, "ok": s.ok,
                                          "problems": list(s.problems)}
                                         for s in report.signatures])

    return router
