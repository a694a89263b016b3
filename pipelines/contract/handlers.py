"""Kafka handler of the contract process manager: load the case, decide, save, emit.

One transactional handler (pipelines/ports.py) for every message of the process: it
loads the case named by the message, asks the pure rules (:mod:`.rules`), saves the
new state, creates the contractor's signing job through the :class:`~pipelines.ports.SigningJobs`
port the hub wires (CON-2), and emits events on ``proc.contract.events``, CloudSign commands on
``proc.contract.commands``, mails on ``proc.mail.requests`` (CON-3, CON-4) and, on
conclusion, the ERP's 契約登録 on ``proc.erp.commands``. A case opened without the
contractor's 企業ID takes it from the contractor's registration (network + user ID). A step
that breaks a rule gives a :class:`ContractStepRejected` naming it and changes nothing.
Review-link expiry is judged at the time the person acted (the envelope's occurred-at).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlmodel import select

from pipelines.contract.erp import why_not_registered
from pipelines.contract.links import record_link
from pipelines.contract.online import application_of, correction_for
from pipelines.contract.rules import Decision, case_of, decide
from pipelines.contract.state import CaseState, ContractPolicy
from pipelines.contract.store import (
    DOC_SCHEME,
    DocumentMissingError,
    case_by_cloudsign_document,
    case_by_cloudsign_request,
    get_document,
    load_case,
    put_document,
    save_case,
)
from pipelines.ports import Handler, HandlerContext, PermanentFailure, SigningJobs
from pipelines.registration.models import ContractorRow
from schemas.application import ApplicationReceived, FormKind
from schemas.cloudsign import (
    ContractConcluded,
    ContractDeclined,
    ContractSendRequested,
    ContractSent,
)
from schemas.contract import (
    CityAgreed,
    CitySignatureApplied,
    ContractCaseOpened,
    ContractForwarded,
    ContractorAgreed,
    ContractorRejected,
    ContractorSignatureAccepted,
    ContractReviewLinkExpired,
    ContractReviewLinkSent,
    ContractRoute,
    ContractSetPrepared,
    ContractStepRecorded,
    ContractStepRejected,
    DocumentRef,
    ElectronicContractApplication,
    ElectronicContractConcluded,
    ReviewLinkExpiryReached,
    ReviewLinkResendRequested,
)
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.surety import ContractSuretyCompleted
from schemas.topics import Topics

__all__ = [
    "COMMANDS",
    "EVENTS",
    "MESSAGE_TYPES",
    "ContractHandlers",
    "DocumentBridge",
]


class DocumentBridge(Protocol):
    """CloudSign's document store (connectors.cloudsign's FileDocumentStore fits)."""

    def put(self, filename: str, content: bytes) -> DocumentRef: ...

    def get(self, ref: DocumentRef) -> bytes: ...


log = logging.getLogger(__name__)


def _case_id(ctx: HandlerContext, cmd: Payload) -> str | None:
    if isinstance(cmd, ContractSent):
        return case_by_cloudsign_request(ctx.session, str(cmd.request_id))
    if isinstance(cmd, ContractConcluded | ContractDeclined):
        # by the document id the case keeps, never by anything CloudSign's side could edit
        found = case_by_cloudsign_document(ctx.session, cmd.document_id)
        return None if found is None else found.case_id
    return case_of(cmd)


def _company_id(ctx: HandlerContext, state: CaseState) -> CaseState:
    """The contractor's 企業ID from its registration, when the case was opened without it."""
    if state.contractor_id is not None:
        return state
    found = ctx.session.exec(select(ContractorRow.company_id).where(
        ContractorRow.network == state.contractor_network,
        ContractorRow.user_id == state.contractor_user_id)).first()
    return state if found is None else state.model_copy(update={"contractor_id": found})


def _signing_job(ctx: HandlerContext, state: CaseState,
                 signing_jobs: SigningJobs | None) -> CaseState:
    assert state.document is not None
    try:
        pdf = get_document(ctx.session, state.document)
    except DocumentMissingError as exc:
        raise PermanentFailure(str(exc), rule_ids=("CON-2",)) from exc
    if signing_jobs is None:  # a wiring mistake: retried, then dead-lettered for replay
        raise RuntimeError("no signing-job port wired: build ContractHandlers with "
                           "signing_jobs")
    people = [state.contractor_name, state.city_name]
    job_id = signing_jobs.create_job(ctx.session, network=state.contractor_network,
                     user_id=state.contractor_user_id, procuring_entity=state.procuring_entity,
                     subject=state.title or state.subject, parties=people,
                     amount_yen=state.amount_yen, document=pdf, now=ctx.now)
    return state.model_copy(update={"signing_job_id": job_id})


def _bridge(ctx: HandlerContext, decision: Decision, new: CaseState,
            store: DocumentBridge | None) -> CaseState:
    """CloudSign route: hand archived sets to CloudSign's store, archive what it signed."""
    if store is None or new.route is not ContractRoute.CLOUDSIGN:
        return new
    for i, command in enumerate(decision.commands):
        if isinstance(command, ContractSendRequested):
            files = tuple(store.put(f.filename, get_document(ctx.session, f))
                          if f.uri.startswith(DOC_SCHEME) else f for f in command.files)
            decision.commands[i] = command.model_copy(update={"files": files})
    if new.signed is not None and not new.signed.uri.startswith(DOC_SCHEME):
        archived = put_document(ctx.session, new.signed.filename, store.get(new.signed), ctx.now)
        new = new.model_copy(update={"signed": archived})
        decision.events = [e.model_copy(update={"document": archived})
                           if isinstance(e, ElectronicContractConcluded) else e
                           for e in decision.events]
    return new


def _publish(ctx: HandlerContext, envelope: Envelope[Any], case_id: str,
             decision: Decision) -> None:
    for event in decision.events:
        ctx.emit(Topics.CONTRACT_EVENTS, event, cause=envelope, correlation_id=case_id)
    for command in decision.commands:
        ctx.emit(Topics.CONTRACT_COMMANDS, command, cause=envelope, correlation_id=case_id)
    for mail in decision.mails:
        ctx.emit(Topics.MAIL_REQUESTS, mail, cause=envelope, correlation_id=case_id)
    for registration in decision.erp:
        ctx.emit(Topics.ERP_COMMANDS, registration, cause=envelope, correlation_id=case_id)


def _online(ctx: HandlerContext, envelope: Envelope[Any], received: ApplicationReceived,
            violations: tuple[RuleViolation, ...]) -> None:
    """A 申出書 from the online system that cannot be taken: its rejection, and the
    correction back through the online system (CON-1)."""
    if violations:
        ctx.emit(Topics.CONTRACT_EVENTS, ContractStepRejected(
            case_id=received.case_id, step=envelope.type, violations=violations),
            cause=envelope, correlation_id=received.case_id)
    correction = correction_for(received, violations)
    if correction is not None:
        ctx.emit(Topics.APPLICATION_COMMANDS, correction, cause=envelope,
                 correlation_id=received.case_id)


@dataclass(frozen=True)
class ContractHandlers:
    """The process manager's handler, built with what it needs from the hub.

    ``policy``: the city's contract policy (review links, CON-3). ``signing_jobs``: where
    the contractor's IC-card signing jobs are queued (the hub's card gateway, CON-2); a
    card-route case that reaches signing without one is retried, then dead-lettered.
    ``cloudsign_store``: CloudSign's document store; with it the CloudSign route takes the
    same archived sets as the card route and archives the signed PDF CloudSign returns
    (CON-7); without it, refs pass unchanged.
    """

    policy: ContractPolicy = field(default_factory=ContractPolicy)
    signing_jobs: SigningJobs | None = None
    cloudsign_store: DocumentBridge | None = None

    @property
    def handlers(self) -> dict[type[Payload], Handler]:
        """Every message type of :data:`MESSAGE_TYPES`, to :meth:`handle`."""
        return dict.fromkeys(MESSAGE_TYPES, self.handle)

    def handle(self, ctx: HandlerContext, envelope: Envelope[Any]) -> None:
        """Every step of the contract process (CON-1 … CON-4)."""
        cmd = envelope.payload
        received = cmd if isinstance(cmd, ApplicationReceived) else None
        if received is not None:  # the online 申出書 (CON-1, CON-2); other forms are not ours
            if received.form is not FormKind.E_CONTRACT_APPLICATION:
                return
            online = application_of(received)
            if online is None:
                _online(ctx, envelope, received, received.problems)
                return
            cmd = online
        case_id = _case_id(ctx, cmd)
        if case_id is None:
            return  # CloudSign's answer to a send this process did not ask for
        state = load_case(ctx.session, case_id)
        if state is not None and isinstance(cmd, _CONCLUDING):
            state = _company_id(ctx, state)
        decision = decide(state, cmd, entity=envelope.procuring_entity, now=ctx.now,
                          acted_at=envelope.occurred_at, policy=self.policy)
        if decision.rejected:
            if received is not None:
                _online(ctx, envelope, received, tuple(decision.violations))
                return
            ctx.emit(Topics.CONTRACT_EVENTS, ContractStepRejected(
                case_id=case_id, step=envelope.type, violations=decision.violations),
                cause=envelope, correlation_id=case_id)
            return
        if decision.state is None:
            return
        new = decision.state
        if decision.sign_request:
            new = _signing_job(ctx, new, self.signing_jobs)
        new = _bridge(ctx, decision, new, self.cloudsign_store)
        if new.concluded_at is not None and not decision.erp and any(
                isinstance(e, ElectronicContractConcluded) for e in decision.events):
            log.warning("case %s concluded but not registered in the ERP: %s; register it "
                        "there by hand", case_id, why_not_registered(new))
        if decision.new_link is not None and new.link is not None:
            record_link(ctx.session, case_id, decision.new_link, number=new.link.number,
                        created_at=ctx.now, expires_at=new.link.expires_at)
        save_case(ctx.session, new)
        _publish(ctx, envelope, case_id, decision)


_CONCLUDING = (CitySignatureApplied, ContractConcluded)
"""The steps that can conclude a case (and so need the 企業ID for the ERP)."""

COMMANDS: tuple[type[Payload], ...] = (
    ContractCaseOpened, ElectronicContractApplication, ContractSetPrepared,
    ReviewLinkResendRequested, ReviewLinkExpiryReached, ContractorAgreed, ContractorRejected,
    ContractForwarded, ContractorSignatureAccepted, CityAgreed, CitySignatureApplied,
)
"""The process's own commands (``proc.contract.commands``)."""

MESSAGE_TYPES: tuple[type[Payload], ...] = (
    *COMMANDS, ContractSent, ContractConcluded, ContractDeclined, ContractSuretyCompleted,
    ApplicationReceived,
)
"""Commands, CloudSign's events (``proc.contract.events``) on its route, the surety
pipeline's 契約保証 completion (``proc.surety.events``, SUR-6), and the online
電子契約利用申出書 (``proc.application.events``, CON-1; corrections go back on
``proc.application.commands``)."""


EVENTS: tuple[type[Payload], ...] = (
    ContractStepRecorded, ContractStepRejected, ContractReviewLinkSent,
    ContractReviewLinkExpired, ElectronicContractConcluded,
)
"""What the process publishes on ``proc.contract.events``."""
