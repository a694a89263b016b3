"""HTTP side of the contract process for the city's staff (CON-2, CON-5, CON-6, CON-7).

``POST /contracts/{case}/contract-set`` (a PDF) archives the contract set and sends it for
review; ``POST /contracts/{case}/city-agreement`` is the city's agreement; both publish
the process's commands through the outbox and answer 202 with the request id.

``GET /contracts`` lists and searches (date, amount, counterparty, status);
``GET /contracts/{case}/certificate`` gives the 合意締結証明書 as JSON and
``…/certificate.pdf`` as a PDF; ``GET /contracts/{case}/document`` the signed PDF;
``POST /contracts/{case}/validation`` re-validates its signatures now.

Every route takes its caller from the bearer token (:class:`hub.identity.StaffIdentity`):
reads need any staff role, the contract set 契約担当, the city's agreement 承認者; a
case of another procuring entity is refused (IAM-3) and the list shows only the caller's
entities. The acting officer is the token's, never a request body's. Every step and read
writes an audit row (hub/audit.py), a step's in the same transaction as its command.
The checks, steps and rows live in :class:`ArchiveService`, which the staff console's
pages (hub/console) call as these routes do.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# definition time, and they name the router's local session dependency.
import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.contract.review_api import AcceptedOut, publish_step, refuse_early
from hub.documents.store import DocumentNotFoundError, DocumentStore, SqlDocumentStore
from hub.identity import Principal, Role, StaffIdentity, denied_entity, denied_role
from pipelines.contract import texts
from pipelines.contract.archive import (
    ConclusionCertificate,
    ContractListItem,
    NotConcludedError,
    certificate_pdf,
    conclusion_certificate,
    parse_cursor,
    revalidate,
    search_contracts,
)
from pipelines.contract.pdfa import JapaneseFontMissingError
from pipelines.contract.state import CaseState, ContractPolicy
from pipelines.contract.store import DOC_SCHEME, load_case
from schemas.contract import CityAgreed, ContractSetPrepared, ContractStatus, DocumentRef
from schemas.envelope import utc_now
from schemas.registry import Payload
from schemas.rejection import RuleViolation

__all__ = [
    "READ_ROLES",
    "ArchiveService",
    "ContractQuery",
    "ValidationOut",
    "archive_router",
    "client_address",
    "not_concluded",
    "scope_of",
]

PRODUCER = "hub.contract.staff"
READ_ROLES = frozenset(Role)
"""Reading the archive: any staff role (監査 reads only)."""


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


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
    after: str | None = Field(default=None, max_length=400)
    """The next page: the cursor of the previous page's last case (keyset pagination)."""

    @field_validator("after")
    @classmethod
    def _a_cursor(cls, value: str | None) -> str | None:
        if value:
            parse_cursor(value)  # ValueError: the field's 422
        return value or None


class ValidationOut(BaseModel):
    case_id: str
    valid: bool
    signatures: list[dict[str, object]]
    problems: list[str]


class ArchiveService:
    """The staff's archive reads and contract steps, each with its role and entity checks
    and its audit row: what the JSON routes below and the staff console (hub/console)
    both call, so a page and the API take the same rules and leave the same trail.

    A refusal raises :class:`fastapi.HTTPException` (IAM-2, IAM-3, CON-2, CON-6) with
    the violation in its detail; ``request`` gives the audit row's client address."""

    def __init__(self, engine: Engine, roots: tuple[x509.Certificate, ...],
                 clock: Callable[[], datetime] = utc_now, *,
                 store: DocumentStore | None = None,
                 policy: ContractPolicy | None = None) -> None:
        self.engine, self.roots, self.clock = engine, roots, clock
        self.policy = policy or ContractPolicy()
        self.docs: DocumentStore = store or SqlDocumentStore(engine)

    def write(self, who: Principal, request: Request, action: str, target: str, *,
              role: str = "", entity: str = "", outcome: str = "ok", detail: str = "",
              into: Session | None = None, read: Session | None = None) -> None:
        """The audit row: in ``into``'s transaction (a step's, committed by its caller);
        or after a read, in the reading session, committed here; or alone."""
        fields: dict[str, Any] = {
            "actor": who.who, "actor_kind": who.kind, "action": action, "target": target,
            "at": self.clock(), "role": role, "entity": entity,
            "client": client_address(request), "outcome": outcome, "detail": detail}
        if into is not None:
            audit.record(into, **fields)
        elif read is not None:
            audit.record(read, **fields, durable=False)
            read.commit()
        else:
            audit.record_alone(self.engine, **fields)

    def allowed(self, who: Principal, request: Request, action: str, target: str, *,
                roles: frozenset[Role], entity: str = "") -> str:
        """The role the step is taken in; 403 (IAM-2, IAM-3) with an audit row otherwise."""
        held = sorted(who.roles & roles)
        if not held:
            self.write(who, request, action, target, entity=entity or scope_of(who),
                       outcome="denied", detail="role")
            raise denied_role(roles)
        if entity and not who.covers(entity):
            self.write(who, request, action, target, role=held[0], entity=entity,
                       outcome="denied", detail="entity")
            raise denied_entity(entity)
        return held[0]

    @staticmethod
    def known(case_id: str, db: Session) -> CaseState:
        state = load_case(db, case_id)
        if state is None:
            raise HTTPException(404, detail={"violations": [texts.no_case(case_id).model_dump()]})
        return state

    def readable(self, who: Principal, request: Request, action: str, case_id: str,
                 db: Session) -> tuple[CaseState | None, str]:
        """The case (``None`` when unknown) and the role it is read in, once allowed."""
        state = load_case(db, case_id)
        role = self.allowed(who, request, action, case_id, roles=READ_ROLES,
                            entity=state.procuring_entity if state else "")
        return state, role

    def search(self, who: Principal, request: Request, db: Session,
               q: ContractQuery) -> list[ContractListItem]:
        role = self.allowed(who, request, "contracts.search", "contracts", roles=READ_ROLES)
        found = search_contracts(db, **q.model_dump(), entities=who.entity_filter())
        self.write(who, request, "contracts.search", "contracts", role=role,
                   entity=scope_of(who), detail=f"{len(found)} result(s)", read=db)
        return found

    def certificate(self, who: Principal, request: Request, case_id: str,
                    db: Session) -> ConclusionCertificate:
        action = "contracts.certificate"
        state, role = self.readable(who, request, action, case_id, db)
        try:
            cert = conclusion_certificate(db, case_id, self.roots, self.clock())
        except NotConcludedError as exc:
            raise not_concluded(exc) from exc
        assert state is not None
        self.write(who, request, action, case_id, role=role, entity=state.procuring_entity,
                   read=db)
        return cert

    def document(self, who: Principal, request: Request, case_id: str, db: Session) -> bytes:
        state, role = self.readable(who, request, "contracts.document", case_id, db)
        if state is None or state.signed is None:
            raise not_concluded(NotConcludedError(f"case {case_id} has no signed document"))
        try:
            body = self.docs.get(state.signed.sha256)
        except DocumentNotFoundError as exc:
            raise not_concluded(NotConcludedError(str(exc))) from exc
        self.write(who, request, "contracts.document", case_id, role=role,
                   entity=state.procuring_entity, read=db)
        return body

    def publish(self, state: CaseState, payload: Payload, who: Principal, request: Request,
                *, action: str, role: str) -> AcceptedOut:
        return publish_step(self.engine, state, payload, self.clock(), PRODUCER,
                            policy=self.policy, also=lambda tx: self.write(
                                who, request, action, state.case_id, role=role,
                                entity=state.procuring_entity, into=tx))

    def refused(self, who: Principal, request: Request, action: str, state: CaseState, *,
                role: str, exc: HTTPException) -> HTTPException:
        self.write(who, request, action, state.case_id, role=role,
                   entity=state.procuring_entity, outcome="refused", detail=str(exc.status_code))
        return exc

    def contract_set(self, who: Principal, request: Request, case_id: str, title: str,  # noqa: PLR0917 -- the step's inputs
                     pdf: bytes, db: Session) -> AcceptedOut:
        """The city's contract set (a PDF), archived and sent for review (CON-2)."""
        action = "contracts.contract-set"
        state = self.known(case_id, db)
        role = self.allowed(who, request, action, case_id,
                            roles=frozenset({Role.CONTRACT_OFFICER}),
                            entity=state.procuring_entity)
        if not pdf.startswith(b"%PDF-"):
            raise self.refused(who, request, action, state, role=role,
                               exc=HTTPException(422, detail="the contract set must be a PDF"))
        digest = hashlib.sha256(pdf).hexdigest()
        command = ContractSetPrepared(case_id=case_id, title=title, document=DocumentRef(
            uri=f"{DOC_SCHEME}{digest}", filename=f"{case_id}.pdf", size_bytes=len(pdf),
            sha256=digest))
        try:
            # before keeping a set nobody may review
            refuse_early(state, command, self.clock(), self.policy)
        except HTTPException as exc:
            raise self.refused(who, request, action, state, role=role, exc=exc) from None
        self.docs.put(pdf, filename=command.document.filename)
        return self.publish(state, command, who, request, action=action, role=role)

    def city_agreement(self, who: Principal, request: Request, case_id: str,
                       db: Session) -> AcceptedOut:
        """The city's officer agrees (CON-2): the officer is the token's person. A static
        token or a back-office client stands for the case's named officer."""
        action = "contracts.city-agreement"
        state = self.known(case_id, db)
        role = self.allowed(who, request, action, case_id, roles=frozenset({Role.APPROVER}),
                            entity=state.procuring_entity)
        by = who.email if who.kind == "person" else state.city_officer.email
        if by is None:
            raise self.refused(who, request, action, state, role=role, exc=HTTPException(
                403, detail={"violations": [texts.city_officer_only().model_dump()]}))
        try:
            return self.publish(state, CityAgreed(case_id=case_id, by=by), who, request,
                                action=action, role=role)
        except HTTPException as exc:
            raise self.refused(who, request, action, state, role=role, exc=exc) from None

    def validation(self, who: Principal, request: Request, case_id: str,
                   db: Session) -> ValidationOut:
        state, role = self.readable(who, request, "contracts.validation", case_id, db)
        try:
            report = revalidate(db, case_id, self.roots)
        except NotConcludedError as exc:
            raise not_concluded(exc) from exc
        assert state is not None
        self.write(who, request, "contracts.validation", case_id, role=role,
                   entity=state.procuring_entity, outcome="ok" if report.valid else "failed",
                   read=db)
        return ValidationOut(case_id=case_id, valid=report.valid, problems=list(report.problems),
                             signatures=[{"field_name": s.field_name, "signer": s.signer,
                                          "timestamped_at": s.timestamped_at, "ok": s.ok,
                                          "problems": list(s.problems)}
                                         for s in report.signatures])


def scope_of(who: Principal) -> str:
    """The audit row's entity of a step on no one case: the caller's entities."""
    scope = who.entity_filter()
    return ",".join(sorted(scope)) if scope is not None else "*"


def not_concluded(exc: NotConcludedError) -> HTTPException:
    return HTTPException(404, detail={
        "rule_id": "CON-6", "message_ja": "締結済みの契約がありません。",
        "message_en": str(exc), "next_step_ja": "契約一覧で案件の状態を確認してください。",
        "next_step_en": "Check the case's status in the contract list."})


def archive_router(
        engine: Engine, roots: tuple[x509.Certificate, ...],
        clock: Callable[[], datetime] = utc_now, *, identity: StaffIdentity,
        store: DocumentStore | None = None, service: ArchiveService | None = None,
        policy: ContractPolicy | None = None) -> APIRouter:
    """``store``: the shared document store the archive reads and the contract sets go to
    (default: the database's, :class:`~hub.documents.SqlDocumentStore`); ``service``: the
    :class:`ArchiveService` to use (the console shares it), else one on these; ``policy``:
    the city's contract policy, as the process manager's (the defaults otherwise)."""
    router = APIRouter(prefix="/contracts", tags=["contract archive"])
    svc = service or ArchiveService(engine, roots, clock, store=store, policy=policy)

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Principal:
        # On the event loop when no network is needed; a provider's first token (which
        # may fetch its keys) in a worker thread.
        who = identity.known(authorization)
        if who is None:
            who = await run_in_threadpool(identity.principal, authorization)
        return who

    caller_t = Annotated[Principal, Depends(caller)]
    db_t = Annotated[Session, Depends(session)]

    @router.get("")
    def contracts(who: caller_t, request: Request, db: db_t,
                  q: Annotated[ContractQuery, Query()]) -> list[ContractListItem]:
        return svc.search(who, request, db, q)

    @router.get("/{case_id}/certificate")
    def certificate(case_id: str, who: caller_t, request: Request,
                    db: db_t) -> ConclusionCertificate:
        return svc.certificate(who, request, case_id, db)

    @router.get("/{case_id}/certificate.pdf")
    def certificate_as_pdf(case_id: str, who: caller_t, request: Request, db: db_t) -> Response:
        cert = svc.certificate(who, request, case_id, db)
        try:
            return Response(certificate_pdf(cert), media_type="application/pdf")
        except JapaneseFontMissingError as exc:  # the JSON certificate still works
            raise HTTPException(503, detail={"violations": [RuleViolation(
                rule_id="CON-6", message_ja="証明書のPDFを作成できません（日本語フォントが"
                "ありません）。", message_en=f"The certificate PDF cannot be written: {exc}",
                next_step_ja="証明書はJSON（/certificate）で取得できます。管理者に"
                "fonts-ipaexfont の導入を依頼してください。",
                next_step_en="Get the certificate as JSON (/certificate) and ask the "
                "operator to install fonts-ipaexfont.").model_dump()]}) from None

    @router.get("/{case_id}/document")
    def document(case_id: str, who: caller_t, request: Request, db: db_t) -> Response:
        return Response(svc.document(who, request, case_id, db), media_type="application/pdf")

    @router.post("/{case_id}/contract-set", status_code=202, openapi_extra={
        "requestBody": {"content": {"application/pdf": {
            "schema": {"type": "string", "format": "binary"}}}, "required": True}})
    def contract_set(case_id: str, title: Annotated[str, Query(min_length=1, max_length=200)],  # noqa: PLR0917 -- FastAPI parameters
                     pdf: Annotated[bytes, Depends(_body)], who: caller_t, request: Request,
                     db: db_t) -> AcceptedOut:
        """The city's contract set (a PDF), archived and sent for review (CON-2)."""
        return svc.contract_set(who, request, case_id, title, pdf, db)

    @router.post("/{case_id}/city-agreement", status_code=202)
    def city_agreement(case_id: str, who: caller_t, request: Request, db: db_t) -> AcceptedOut:
        """The city's officer agrees (CON-2): the officer is the token's person. A static
        token or a back-office client stands for the case's named officer."""
        return svc.city_agreement(who, request, case_id, db)

    @router.post("/{case_id}/validation")
    def validation(case_id: str, who: caller_t, request: Request, db: db_t) -> ValidationOut:
        return svc.validation(who, request, case_id, db)

    return router
