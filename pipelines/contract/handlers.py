"""Kafka handler of the contract process manager: load the case, decide, save, emit.

One transactional handler (pipelines/ports.py) for every message of the process: it
loads the case named by the message, asks the pure rules (:mod:`.rules`), saves the
new state, creates the contractor's gateway signing job when the rules ask for it
(CON-2), and emits events on ``proc.contract.events``, CloudSign commands on
``proc.contract.commands`` and mails on ``proc.mail.requests`` (CON-3, CON-4). A step
that breaks a rule gives a :class:`ContractStepRejected` naming it and changes nothing.
Review-link expiry is judged at the time the person acted (the envelope's occurred-at).
"""

from __future__ import annotations

from typing import Any

from hub.gateway.jobs import create_job
from pipelines.contract.rules import Decision, case_of, decide
from pipelines.contract.state import CaseState, ContractPolicy, policy_from_env
from pipelines.contract.store import (
    DocumentMissingError,
    case_by_cloudsign_request,
    get_document,
    load_case,
    save_case,
)
from pipelines.ports import Handler, HandlerContext, PermanentFailure
from schemas.cloudsign import (
    ContractConcluded,
    ContractDeclined,
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
    ContractSetPrepared,
    ContractStepRecorded,
    ContractStepRejected,
    ElectronicContractApplication,
    ElectronicContractConcluded,
    ReviewLinkExpiryReached,
    ReviewLinkResendRequested,
)
from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.surety import ContractSuretyCompleted
from schemas.topics import Topics

__all__ = ["COMMANDS", "EVENTS", "HANDLERS", "handle_contract_message", "use_policy"]

_policy: ContractPolicy | None = None


def use_policy(policy: ContractPolicy | None) -> None:
    """Set the city's contract policy (``None``: back to the environment's)."""
    global _policy  # noqa: PLW0603 -- one policy per process, set once at start-up
    _policy = policy


def _current_policy() -> ContractPolicy:
    return _policy or policy_from_env()


def _case_id(ctx: HandlerContext, cmd: Payload) -> str | None:
    if isinstance(cmd, ContractSent):
        return case_by_cloudsign_request(ctx.session, str(cmd.request_id))
    return case_of(cmd)


def _signing_job(ctx: HandlerContext, state: CaseState) -> CaseState:
    assert state.document is not None
    try:
        pdf = get_document(ctx.session, state.document)
    except DocumentMissingError as exc:
        raise PermanentFailure(str(exc), rule_ids=("CON-2",)) from exc
    people = [state.contractor_name, state.city_name]
    job = create_job(ctx.session, network=state.contractor_network,
                     user_id=state.contractor_user_id, procuring_entity=state.procuring_entity,
                     subject=state.title or state.subject, parties=people,
                     amount_yen=state.amount_yen, document=pdf, now=ctx.now)
    return state.model_copy(update={"signing_job_id": job.id})


def _publish(ctx: HandlerContext, envelope: Envelope[Any], case_id: str,
             decision: Decision) -> None:
    for event in decision.events:
        ctx.emit(Topics.CONTRACT_EVENTS, event, cause=envelope, correlation_id=case_id)
    for command in decision.commands:
        ctx.emit(Topics.CONTRACT_COMMANDS, command, cause=envelope, correlation_id=case_id)
    for mail in decision.mails:
        ctx.emit(Topics.MAIL_REQUESTS, mail, cause=envelope, correlation_id=case_id)


def handle_contract_message(ctx: HandlerContext, envelope: Envelope[Any]) -> None:
    """Every step of the contract process (CON-1 … CON-4)."""
    cmd = envelope.payload
    case_id = _case_id(ctx, cmd)
    if case_id is None:
        return  # CloudSign's answer to a send this process did not ask for
    state = load_case(ctx.session, case_id)
    decision = decide(state, cmd, entity=envelope.procuring_entity, now=ctx.now,
                      acted_at=envelope.occurred_at, policy=_current_policy())
    if decision.rejected:
        ctx.emit(Topics.CONTRACT_EVENTS, ContractStepRejected(
            case_id=case_id, step=envelope.type, violations=decision.violations),
            cause=envelope, correlation_id=case_id)
        return
    if decision.state is None:
        return
    new = decision.state
    if decision.sign_request:
        new = _signing_job(ctx, new)
    save_case(ctx.session, new)
    _publish(ctx, envelope, case_id, decision)


COMMANDS: tuple[type[Payload], ...] = (
    ContractCaseOpened, ElectronicContractApplication, ContractSetPrepared,
    ReviewLinkResendRequested, ReviewLinkExpiryReached, ContractorAgreed, ContractorRejected,
    ContractForwarded, ContractorSignatureAccepted, CityAgreed, CitySignatureApplied,
)
"""The process's own commands (``proc.contract.commands``)."""

HANDLERS: dict[type[Payload], Handler] = {
    **dict.fromkeys(COMMANDS, handle_contract_message),
    **dict.fromkeys((ContractSent, ContractConcluded, ContractDeclined), handle_contract_message),
    ContractSuretyCompleted: handle_contract_message,
}
"""Commands, CloudSign's events (``proc.contract.events``) on its route, and the surety
pipeline's 契約保証 completion (``proc.surety.events``, SUR-6)."""


EVENTS: tuple[type[Payload], ...] = (
    ContractStepRecorded, ContractStepRejected, ContractReviewLinkSent,
    ContractReviewLinkExpired, ElectronicContractConcluded,
)
"""What the process publishes on ``proc.contract.events``."""
