"""The review page's HTTP side: what the contractor does with a review link (CON-2, CON-3).

The link id in the review mail is the capability: ``GET /contract/review/{link}`` shows
the case and whether the link still works, ``…/document`` serves the contract set while
it does, and ``POST …/agree``, ``…/reject``, ``…/forward`` and ``…/resend`` publish the
process's commands through the transactional outbox (answer 202 with the request id). A
step the rules refuse on the current state is answered 422 with the violations at once;
the process manager decides again when the command arrives. An expired or
replaced link answers 410 with CON-3 and the next step; a re-send works from an expired
link, so the contractor can always ask for a new one.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# definition time, and they name the router's local session dependency.
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.outbox import enqueue
from pipelines.contract import texts
from pipelines.contract.handlers import current_policy
from pipelines.contract.rules import decide
from pipelines.contract.state import CaseState
from pipelines.contract.store import case_by_review_link, get_document
from schemas.contract import (
    ContractForwarded,
    ContractorAgreed,
    ContractorRejected,
    ContractStatus,
    ReviewLinkResendRequested,
)
from schemas.envelope import new_envelope, utc_now
from schemas.mail import MailAddress
from schemas.registry import Payload
from schemas.topics import Topics

__all__ = [
    "AcceptedOut",
    "ForwardIn",
    "RejectIn",
    "ReviewOut",
    "WhoIn",
    "publish_step",
    "refuse_early",
    "review_router",
]

PRODUCER = "hub.contract.review"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoIn(_In):
    by: MailAddress


class RejectIn(WhoIn):
    reason: str = Field(min_length=1, max_length=1000)


class ForwardIn(WhoIn):
    to: MailAddress


class ReviewOut(BaseModel):
    case_id: str
    subject: str
    title: str | None
    city_name: str
    contractor_name: str
    status: ContractStatus
    expires_at: datetime
    usable: bool


class AcceptedOut(BaseModel):
    request_id: uuid.UUID


def _gone(violation: object) -> HTTPException:
    return HTTPException(410, detail={"violations": [violation]})


def refuse_early(state: CaseState, payload: Payload, now: datetime) -> None:
    """Answer 422 with the rules a step breaks now, rather than only on the events topic.

    The process manager decides again when the command arrives; this is the same pure
    decision taken on the state as the page sees it.
    """
    decision = decide(state, payload, entity=state.procuring_entity, now=now, acted_at=now,
                      policy=current_policy())
    if decision.rejected:
        raise HTTPException(422, detail={"violations": [
            v.model_dump() for v in decision.violations]})


def publish_step(engine: Engine, state: CaseState, payload: Payload, now: datetime,
                 producer: str, *, also: Callable[[Session], object] | None = None
                 ) -> AcceptedOut:
    """A person's step, decided early by the pure rules, then queued for the process
    through the outbox (the process manager decides again when it arrives). ``also``
    writes in the same transaction (the step's audit row, hub/audit.py)."""
    refuse_early(state, payload, now)
    envelope = new_envelope(payload, correlation_id=state.case_id,
                            procuring_entity=state.procuring_entity, producer=producer,
                            occurred_at=now)
    with Session(engine) as db, db.begin():
        enqueue(db, Topics.CONTRACT_COMMANDS, envelope)
        if also is not None:
            also(db)
    return AcceptedOut(request_id=envelope.message_id)


def review_router(engine: Engine, clock: Callable[[], datetime] = utc_now) -> APIRouter:
    router = APIRouter(prefix="/contract/review", tags=["contract review"])

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    def case(link_id: uuid.UUID, db: Annotated[Session, Depends(session)]) -> CaseState:
        state = case_by_review_link(db, str(link_id))
        if state is None or state.link is None:
            raise _gone(texts.link_superseded().model_dump())
        return state

    def usable(state: Annotated[CaseState, Depends(case)]) -> CaseState:
        assert state.link is not None
        if state.status is not ContractStatus.REVIEW or not state.link.usable_at(clock()):
            raise _gone(texts.link_expired(state.link.expires_at.isoformat()).model_dump())
        return state

    def publish(state: CaseState, payload: Payload) -> AcceptedOut:
        return publish_step(engine, state, payload, clock(), PRODUCER)

    @router.get("/{link_id}")
    def show(state: Annotated[CaseState, Depends(case)]) -> ReviewOut:
        assert state.link is not None
        return ReviewOut(case_id=state.case_id, subject=state.subject, title=state.title,
                         city_name=state.city_name, contractor_name=state.contractor_name,
                         status=state.status, expires_at=state.link.expires_at,
                         usable=(state.status is ContractStatus.REVIEW
                                 and state.link.usable_at(clock())))

    @router.get("/{link_id}/document")
    def document(state: Annotated[CaseState, Depends(usable)],
                 db: Annotated[Session, Depends(session)]) -> Response:
        assert state.document is not None
        return Response(get_document(db, state.document), media_type="application/pdf")

    @router.post("/{link_id}/agree", status_code=202)
    def agree(link_id: uuid.UUID, body: WhoIn,
              state: Annotated[CaseState, Depends(usable)]) -> AcceptedOut:
        """書類の内容に同意 (CON-2)."""
        return publish(state, ContractorAgreed(case_id=state.case_id, link_id=link_id,
                                               by=body.by))

    @router.post("/{link_id}/reject", status_code=202)
    def reject(link_id: uuid.UUID, body: RejectIn,
               state: Annotated[CaseState, Depends(usable)]) -> AcceptedOut:
        """同意せず却下 (CON-2)."""
        return publish(state, ContractorRejected(case_id=state.case_id, link_id=link_id,
                                                 by=body.by, reason=body.reason))

    @router.post("/{link_id}/forward", status_code=202)
    def forward(link_id: uuid.UUID, body: ForwardIn,
                state: Annotated[CaseState, Depends(usable)]) -> AcceptedOut:
        """この書類を転送する: to another person of the 申出書 (CON-1)."""
        return publish(state, ContractForwarded(case_id=state.case_id, link_id=link_id,
                                                by=body.by, to=body.to))

    @router.post("/{link_id}/resend", status_code=202)
    def resend(body: WhoIn, state: Annotated[CaseState, Depends(case)]) -> AcceptedOut:
        """再配信の依頼 (CON-3), from the expired link's page too."""
        return publish(state, ReviewLinkResendRequested(case_id=state.case_id,
                                                        requested_by=body.by))

    return router
