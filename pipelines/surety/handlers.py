"""Kafka handlers of the surety pipeline: load the case slice, decide, save, emit.

Each handler is ``def handle_x(ctx, envelope) -> None`` (pipelines/ports.py). The case
is the envelope's correlation id (Topics: key ``case``). Certificates fetched before
the city registered the case wait in ``sur_waiting_certificate`` and are decided when
the case facts arrive, so the order of the two topics does not matter.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from pipelines.ports import Handler, HandlerContext, PermanentFailure
from pipelines.surety.models import (
    GuaranteeRow,
    PaperTaskRow,
    SuretyCaseRow,
    WaitingCertificateRow,
)
from pipelines.surety.rules import (
    CaseState,
    Decision,
    Guarantee,
    PaperTask,
    decide_application,
    decide_case,
    decide_certificate,
    decide_paper,
    decide_refusal,
)
from schemas.application import ApplicationReceived, CorrectionRequested
from schemas.case import CaseFacts, CaseRegistered, CaseUpdated
from schemas.envelope import JST, Envelope
from schemas.erp import ErpRegistrationRequested
from schemas.mail import MailRequested
from schemas.registry import Payload
from schemas.surety import (
    CertificateForm,
    ContractSuretyCompleted,
    PaperGuaranteeRecorded,
    PaperGuaranteeTaskClosed,
    PaperGuaranteeTaskOpened,
    SuretyAccepted,
    SuretyCertificate,
    SuretyCertificateFetched,
    SuretyCheckRequested,
    SuretyLookupRefused,
    SuretyProduct,
    SuretyRejected,
)
from schemas.topics import Topics, TopicSpec

__all__ = [
    "EMITS",
    "HANDLERS",
    "TOPICS",
    "handle_application",
    "handle_case",
    "handle_certificate",
    "handle_paper_recorded",
    "handle_refusal",
    "load_case",
]


def load_case(session: Session, case_id: str) -> CaseState | None:
    row = session.get(SuretyCaseRow, case_id)
    if row is None:
        return None
    return CaseState(CaseFacts.model_validate(row.facts, strict=False), row.entity,
                     frozenset(row.earlier_amounts))


def _guarantee(session: Session, number: str) -> Guarantee | None:
    row = session.get(GuaranteeRow, number)
    if row is None:
        return None
    return Guarantee(row.number, row.case_id, SuretyProduct(row.product),
                     CertificateForm(row.form), row.completed)


def _tasks(session: Session, case_id: str) -> tuple[PaperTask, ...]:
    rows = session.exec(select(PaperTaskRow).where(PaperTaskRow.case_id == case_id))
    return tuple(PaperTask(r.task_id, r.case_id, SuretyProduct(r.product), r.due_date, r.status)
                 for r in rows)


def _today(ctx: HandlerContext) -> date:
    return ctx.now.astimezone(JST).date()


def _apply(ctx: HandlerContext, envelope: Envelope[Any], decision: Decision, case_id: str,
           entity: str | None) -> None:
    session = ctx.session
    if decision.guarantee is not None:
        g = decision.guarantee
        row = session.get(GuaranteeRow, g.number)
        if row is None:
            row = GuaranteeRow(number=g.number, case_id=g.case_id, product=g.product.value,
                               form=g.form.value, created_at=ctx.now, updated_at=ctx.now)
        row.completed = g.completed
        row.updated_at = ctx.now
        session.add(row)
    for task in decision.tasks:
        trow = session.get(PaperTaskRow, task.task_id)
        if trow is None:
            trow = PaperTaskRow(task_id=task.task_id, case_id=task.case_id,
                                product=task.product.value, due_date=task.due_date,
                                status=task.status, opened_at=ctx.now)
        trow.due_date, trow.status = task.due_date, task.status
        trow.closed_at = None if task.status == "open" else ctx.now
        session.add(trow)
    session.flush()
    for topic, payload in decision.emits:
        ctx.emit(topic, payload, cause=envelope, correlation_id=case_id, entity=entity)


def _decide_certificate(ctx: HandlerContext, envelope: Envelope[Any], case: CaseState | None,
                        cert: SuretyCertificate, case_id: str) -> bool:
    """Decide one certificate; False when it has to wait for the case facts."""
    decision = decide_certificate(case, _guarantee(ctx.session, cert.contract_number),
                                  _tasks(ctx.session, case_id), cert,
                                  case_id=case_id, today=_today(ctx))
    if decision.wait:
        return False
    _apply(ctx, envelope, decision, case_id, case.entity if case else None)
    return True


def handle_certificate(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """SUR-2/3/4/6 for a certificate D・Sure returned."""
    fetched = _expect(envelope, SuretyCertificateFetched)
    case_id = envelope.correlation_id
    if not _decide_certificate(ctx, envelope, load_case(ctx.session, case_id),
                               fetched.certificate, case_id):
        ctx.session.add(WaitingCertificateRow(
            case_id=case_id, certificate=fetched.certificate.model_dump(mode="json"),
            received_at=ctx.now))


def handle_refusal(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """D・Sure refused the number and key (SUR-1/SUR-2): the case's rejection."""
    refused = _expect(envelope, SuretyLookupRefused)
    case = load_case(ctx.session, envelope.correlation_id)
    _apply(ctx, envelope, decide_refusal(refused, envelope.correlation_id, case,
                                         str(envelope.message_id)),
           envelope.correlation_id, case.entity if case else None)


def handle_case(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """The case facts (CaseRegistered / CaseUpdated): SUR-5 tasks, then waiting certificates."""
    facts = _expect(envelope, CaseFacts)
    session = ctx.session
    row = session.get(SuretyCaseRow, facts.case_id)
    earlier: list[int] = []
    if row is not None:
        old = int(row.facts["contract_amount"])
        earlier = sorted({*row.earlier_amounts, old} - {facts.contract_amount})
    dump = facts.model_dump(mode="json")
    if row is None:
        row = SuretyCaseRow(case_id=facts.case_id, entity=envelope.procuring_entity,
                            facts=dump, earlier_amounts=earlier, updated_at=ctx.now)
    row.facts, row.earlier_amounts, row.updated_at = dump, earlier, ctx.now
    row.entity = envelope.procuring_entity
    session.add(row)
    session.flush()
    case = CaseState(facts, envelope.procuring_entity, frozenset(earlier))
    _apply(ctx, envelope, decide_case(case, _tasks(session, facts.case_id)), facts.case_id,
           case.entity)
    waiting = session.exec(select(WaitingCertificateRow).where(
        WaitingCertificateRow.case_id == facts.case_id).order_by(col(WaitingCertificateRow.id)))
    for held in list(waiting):
        cert = SuretyCertificate.model_validate(held.certificate, strict=False)
        _decide_certificate(ctx, envelope, case, cert, facts.case_id)
        session.delete(held)


def handle_paper_recorded(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """SUR-5: the paper original arrived (recorded by the contract office)."""
    cmd = _expect(envelope, PaperGuaranteeRecorded)
    case = load_case(ctx.session, cmd.case_id)
    if case is None:
        raise PermanentFailure(f"no case facts for case {cmd.case_id!r}: register the case "
                               "(CaseRegistered) first, then replay this message",
                               rule_ids=("SUR-5",))
    decision = decide_paper(case, _guarantee(ctx.session, cmd.guarantee_number),
                            _tasks(ctx.session, cmd.case_id), cmd, _today(ctx))
    _apply(ctx, envelope, decision, cmd.case_id, case.entity)


def handle_application(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """SUR-1: key notices of an application become D・Sure checks."""
    received = _expect(envelope, ApplicationReceived)
    _apply(ctx, envelope, decide_application(received), received.case_id, None)


T = TypeVar("T", bound=Payload)


def _expect(envelope: Envelope[Any], kind: type[T]) -> T:
    if not isinstance(envelope.payload, kind):
        raise PermanentFailure(
            f"{envelope.type} reached the {kind.__name__} handler; check the subscription")
    return envelope.payload


HANDLERS: dict[type[Payload], Handler] = {
    CaseRegistered: handle_case,
    CaseUpdated: handle_case,
    SuretyCertificateFetched: handle_certificate,
    SuretyLookupRefused: handle_refusal,
    PaperGuaranteeRecorded: handle_paper_recorded,
    ApplicationReceived: handle_application,
}
"""Every message type the surety pipeline reads, and its handler."""


TOPICS: tuple[TopicSpec, ...] = (Topics.CASE_EVENTS, Topics.SURETY_EVENTS, Topics.SURETY_COMMANDS,
          Topics.APPLICATION_EVENTS)
"""What the surety pipeline's consumer group reads."""

EMITS: tuple[tuple[TopicSpec, tuple[type[Payload], ...]], ...] = (
    (Topics.SURETY_EVENTS, (SuretyAccepted, SuretyRejected, PaperGuaranteeTaskOpened,
                            PaperGuaranteeTaskClosed, ContractSuretyCompleted)),
    (Topics.SURETY_COMMANDS, (SuretyCheckRequested,)),
    (Topics.ERP_COMMANDS, (ErpRegistrationRequested,)),
    (Topics.APPLICATION_COMMANDS, (CorrectionRequested,)),
    (Topics.MAIL_REQUESTS, (MailRequested,)),
)
"""What its handlers publish, by topic (the hub declares it in the consumer's spec)."""
