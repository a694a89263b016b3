"""The contract conclusion process as pure transitions: (state, command) → decision.

CON-2's flow, one case at a time: 開札 (:class:`ContractCaseOpened`) → 電子契約利用申出書
(CON-1) → the city's contract set → review through an expiring link (CON-3), where the
contractor agrees, rejects or forwards → the contractor's IC-card signature (a gateway
signing job; the gateway validates it, CON-5) → the city agrees → the city's own signer
(PAdES B-LT) → 締結完了, with a CONTRACT_CONCLUDED mail per party (CON-4) and the ERP's
契約登録 (:mod:`.erp`). On the
CloudSign route the set goes to CloudSign and the conclusion comes back from its
connector. No I/O here: :func:`decide` returns the new state and what to emit, or the
rejection with CON rule IDs and nothing else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipelines.contract import texts
from pipelines.contract.erp import contract_registration
from pipelines.contract.links import FreshLink
from pipelines.contract.mails import concluded_mails, review_mail
from pipelines.contract.state import PARTIES, CaseState, ContractPolicy, ReviewLink
from schemas.cloudsign import (
    ContractConcluded,
    ContractDeclined,
    ContractParticipant,
    ContractSendRequested,
    ContractSent,
)
from schemas.contract import (
    MAX_CONTRACT_OFFICERS,
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
    ContractStatus,
    ContractStepRecorded,
    ElectronicContractApplication,
    ElectronicContractConcluded,
    ReviewLinkExpiryReached,
    ReviewLinkResendRequested,
)
from schemas.erp import ErpRegistrationRequested
from schemas.mail import MailRequested
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.surety import ContractSuretyCompleted

__all__ = ["LINK_NAMESPACE", "Decision", "case_of", "decide"]

LINK_NAMESPACE = uuid.UUID("6f1d2b1e-7c43-4f7e-9a55-0c0f3e3a6b21")
"""CloudSign request ids are derived from the case and the document, so a redelivered
command decides the same id. Review links never are: their id and token are drawn at
random (:class:`~.links.FreshLink`, CON-3)."""

S = ContractStatus


@dataclass
class Decision:
    """What one command did: the new state and what to publish, or the violations."""

    state: CaseState | None = None
    events: list[Payload] = field(default_factory=list)
    """On ``Topics.CONTRACT_EVENTS``."""
    commands: list[Payload] = field(default_factory=list)
    """On ``Topics.CONTRACT_COMMANDS`` (CloudSign's connector)."""
    mails: list[MailRequested] = field(default_factory=list)
    erp: list[ErpRegistrationRequested] = field(default_factory=list)
    """On ``Topics.ERP_COMMANDS``: the 契約登録 of a concluded case."""
    sign_request: bool = False
    """Create the contractor's signing job for the state's document (gateway)."""
    new_link: FreshLink | None = None
    """A review link made by this decision: the handler keeps its token's hash (CON-3)."""
    violations: tuple[RuleViolation, ...] = ()

    @property
    def rejected(self) -> bool:
        return bool(self.violations)


def case_of(cmd: Payload) -> str | None:
    """The case a command is about (CloudSign's ContractSent names only its request)."""
    value = getattr(cmd, "case_id", None)
    return value if isinstance(value, str) else None


def _reject(*violations: RuleViolation) -> Decision:
    return Decision(violations=violations)


def _moved(state: CaseState, cmd: Payload, now: datetime, **changes: Any) -> Decision:
    new = state.model_copy(update={**changes, "updated_at": now})
    step = ContractStepRecorded(case_id=new.case_id, status=new.status, step=cmd.message_type,
                                agreed=new.agreed, parties=PARTIES, at=now)
    return Decision(state=new, events=[step])


def _new_link(state: CaseState, to: tuple[str, ...], now: datetime,
              policy: ContractPolicy, fresh: FreshLink) -> ReviewLink:
    number = state.link.number + 1 if state.link else 1
    return ReviewLink(link_id=fresh.link_id, to=to, expires_at=now + policy.review_link_ttl,
                      number=number)


def _send_link(decision: Decision, policy: ContractPolicy, fresh: FreshLink) -> Decision:
    state = decision.state
    assert state is not None
    assert state.link is not None
    assert state.link.link_id == fresh.link_id
    link = state.link
    decision.events.append(ContractReviewLinkSent(case_id=state.case_id, link_id=link.link_id,
                                                  to=link.to, expires_at=link.expires_at))
    decision.mails.append(review_mail(state, link, policy, fresh.token))
    decision.new_link = fresh
    return decision


def _link_problem(state: CaseState, link_id: uuid.UUID, acted_at: datetime
                  ) -> RuleViolation | None:
    link = state.link
    if link is None or link.link_id != link_id:
        return texts.link_superseded()
    if not link.usable_at(acted_at):
        return texts.link_expired(link.expires_at.isoformat())
    return None


def _opened(cmd: ContractCaseOpened, entity: str) -> Decision:
    state = CaseState(
        case_id=cmd.case_id, procuring_entity=entity, subject=cmd.subject,
        amount_yen=cmd.amount_yen, contractor_network=cmd.contractor_network,
        contractor_user_id=cmd.contractor_user_id, contractor_name=cmd.contractor_name,
        city_name=cmd.city_name, city_officer=cmd.city_officer, route=cmd.route,
        surety_required=cmd.surety_required, status=S.OPENED, opened_at=cmd.opened_at,
        updated_at=cmd.opened_at, contractor_id=cmd.contractor_id,
        period_start=cmd.period_start, period_end=cmd.period_end)
    step = ContractStepRecorded(case_id=state.case_id, status=state.status,
                                step=cmd.message_type, agreed=0, parties=PARTIES,
                                at=cmd.opened_at)
    return Decision(state=state, events=[step])


def _application(state: CaseState, cmd: ElectronicContractApplication, now: datetime,
                 policy: ContractPolicy, fresh: FreshLink) -> Decision:
    problems = []
    if cmd.authorized is None:
        problems.append(texts.authorized_missing())
    if len(cmd.officers) > MAX_CONTRACT_OFFICERS:
        problems.append(texts.too_many_officers(len(cmd.officers)))
    if state.status not in (S.OPENED, S.APPLIED, S.REVIEW, S.REJECTED):
        problems.append(texts.too_late_to_change_addresses())
    if problems:
        return _reject(*problems)
    status = S.APPLIED if state.status is S.OPENED else state.status
    decision = _moved(state, cmd, now, authorized=cmd.authorized, officers=cmd.officers,
                      status=status)
    if status is S.REVIEW:
        # A changed address means a new 申出書 (CON-1): the review goes to the new people
        # and the old link stops working.
        new = decision.state
        assert new is not None
        decision.state = new.model_copy(
            update={"link": _new_link(new, new.declared_addresses, now, policy, fresh)})
        _send_link(decision, policy, fresh)
    return decision


def _prepared(state: CaseState, cmd: ContractSetPrepared, now: datetime,
              policy: ContractPolicy, fresh: FreshLink) -> Decision:
    if state.status is S.OPENED:
        return _reject(texts.application_needed())
    if state.status not in (S.APPLIED, S.REJECTED):
        return _reject(texts.wrong_step("契約書の作成", "prepare the contract set",
                                        state.status.value))
    reset = {"title": cmd.title, "document": cmd.document, "rejection_reason": None,
             "contractor_agreed_at": None, "contractor_agreed_by": None}
    if state.route is ContractRoute.CLOUDSIGN:
        request_id = uuid.uuid5(LINK_NAMESPACE, f"{state.case_id}:cloudsign:{cmd.document.sha256}")
        decision = _moved(state, cmd, now, status=S.SENT_TO_CLOUDSIGN,
                          cloudsign_request_id=request_id, cloudsign_document_id=None, **reset)
        people = ((state.authorized,) if state.authorized else ()) + state.officers
        participants = tuple(ContractParticipant(name=p.name, email=p.email,
                                                 organization=state.contractor_name[:100])
                             for p in people)
        city = ContractParticipant(name=state.city_officer.name, email=state.city_officer.email,
                                   organization=state.city_name)
        decision.commands.append(ContractSendRequested(
            request_id=request_id, case_id=state.case_id, title=cmd.title,
            files=(cmd.document,), participants=(*participants, city)))
        return decision
    decision = _moved(state, cmd, now, status=S.REVIEW, **reset)
    new = decision.state
    assert new is not None
    decision.state = new.model_copy(
        update={"link": _new_link(new, new.declared_addresses, now, policy, fresh)})
    return _send_link(decision, policy, fresh)


def _review_step(state: CaseState, cmd: ContractorAgreed | ContractorRejected | ContractForwarded,
                 now: datetime, acted_at: datetime, policy: ContractPolicy, *,
                 fresh: FreshLink) -> Decision:
    if state.status is not S.REVIEW:
        return _reject(texts.set_needed_first())
    problem = _link_problem(state, cmd.link_id, acted_at)
    if problem is not None:
        return _reject(problem)
    assert state.link is not None
    if cmd.by.lower() not in state.link.to:
        return _reject(texts.not_declared(cmd.by, "by"))
    if isinstance(cmd, ContractorAgreed):
        decision = _moved(state, cmd, now, status=S.CONTRACTOR_AGREED,
                          contractor_agreed_at=acted_at, contractor_agreed_by=cmd.by.lower())
        decision.sign_request = True
        return decision
    if isinstance(cmd, ContractorRejected):
        return _moved(state, cmd, now, status=S.REJECTED, rejection_reason=cmd.reason,
                      link=state.link.model_copy(update={"expired": True}))
    if cmd.to.lower() not in state.declared_addresses:
        return _reject(texts.not_declared(cmd.to, "to"))
    decision = _moved(state, cmd, now,
                      link=_new_link(state, (cmd.to.lower(),), now, policy, fresh))
    return _send_link(decision, policy, fresh)


def _resend(state: CaseState, cmd: ReviewLinkResendRequested, now: datetime,
            policy: ContractPolicy, fresh: FreshLink) -> Decision:
    if state.status is not S.REVIEW or state.link is None:
        return _reject(texts.set_needed_first())
    who = cmd.requested_by.lower()
    if who not in state.declared_addresses:
        return _reject(texts.not_declared(cmd.requested_by, "requested_by"))
    to = state.link.to if who in state.link.to else (who,)
    decision = _moved(state, cmd, now, link=_new_link(state, to, now, policy, fresh))
    return _send_link(decision, policy, fresh)


def _expiry(state: CaseState, cmd: ReviewLinkExpiryReached, now: datetime) -> Decision:
    link = state.link
    if (state.status is not S.REVIEW or link is None or link.link_id != cmd.link_id
            or link.expired or now < link.expires_at):
        return Decision()  # a stale or early timer: nothing to do, nothing to refuse
    decision = _moved(state, cmd, now, link=link.model_copy(update={"expired": True}))
    decision.events.append(ContractReviewLinkExpired(case_id=state.case_id,
                                                     link_id=link.link_id))
    return decision


def _card_step(state: CaseState, cmd: Payload, now: datetime) -> Decision:
    if isinstance(cmd, ContractorSignatureAccepted):
        if state.status is not S.CONTRACTOR_AGREED or cmd.signing_job_id != state.signing_job_id:
            return _reject(texts.wrong_step("受注者の署名", "contractor's signature",
                                            state.status.value))
        return _moved(state, cmd, now, status=S.CONTRACTOR_SIGNED, contractor_signed=cmd.document,
                      contractor_signer=f"{cmd.signer_issuer} #{cmd.signer_serial}",
                      contractor_signed_at=cmd.signed_at)
    if isinstance(cmd, CityAgreed):
        if state.status is not S.CONTRACTOR_SIGNED:
            return _reject(texts.wrong_step("発注者の同意", "the city's agreement",
                                            state.status.value))
        if cmd.by.lower() != state.city_officer.email.lower():
            return _reject(texts.city_officer_only())
        if state.surety_required and state.surety_number is None:
            return _reject(texts.surety_missing())
        return _moved(state, cmd, now, status=S.CITY_AGREED, city_agreed_at=now)
    assert isinstance(cmd, CitySignatureApplied)
    if state.status is not S.CITY_AGREED:
        return _reject(texts.wrong_step("発注者の署名", "the city's signature", state.status.value))
    return _concluded(state, cmd, now, cmd.document, cmd.signed_at, city_signer=cmd.signer_subject,
                      city_signed_at=cmd.signed_at)


def _concluded(state: CaseState, cmd: Payload, now: datetime, document: Any,
               at: datetime, **changes: Any) -> Decision:
    decision = _moved(state, cmd, now, status=S.CONCLUDED, signed=document, concluded_at=at,
                      **changes)
    new = decision.state
    assert new is not None
    decision.events.append(ElectronicContractConcluded(
        case_id=new.case_id, route=new.route, concluded_at=at, document=document))
    if new.route is ContractRoute.CARD:
        decision.mails.extend(concluded_mails(new))  # CloudSign mails both parties itself
    registration = contract_registration(new, at)
    if registration is not None:  # else the handler says why (erp.why_not_registered)
        decision.erp.append(registration)
    return decision


def _cloudsign_step(state: CaseState, cmd: Payload, now: datetime) -> Decision:
    if state.status is not S.SENT_TO_CLOUDSIGN:
        return Decision()  # CloudSign's events for an older send: already superseded
    if isinstance(cmd, ContractSent):
        new = state.model_copy(update={"cloudsign_document_id": cmd.document_id,
                                       "updated_at": now})
        return Decision(state=new)
    if isinstance(cmd, ContractDeclined):
        reason = " / ".join(v.message_ja for v in cmd.violations)
        return _moved(state, cmd, now, status=S.REJECTED, rejection_reason=reason[:1000])
    assert isinstance(cmd, ContractConcluded)
    return _concluded(state, cmd, now, cmd.signed_files[0], cmd.concluded_at,
                      cloudsign_document_id=cmd.document_id)


def decide(state: CaseState | None, cmd: Payload, *, entity: str, now: datetime,
           acted_at: datetime, policy: ContractPolicy,
           fresh: FreshLink | None = None) -> Decision:
    """The transition of ``state`` under ``cmd`` (``acted_at``: when the person acted).

    ``fresh``: the id and token of a review link this step may make (drawn at random when
    not given; CON-3: never derived from the case)."""
    fresh = fresh or FreshLink.draw()
    if isinstance(cmd, ContractCaseOpened):
        return _opened(cmd, entity) if state is None else _reject(
            texts.already_opened(cmd.case_id))
    if state is None:
        case = case_of(cmd)
        return _reject(texts.no_case(case or "?")) if case else Decision()
    if isinstance(cmd, ElectronicContractApplication):
        return _application(state, cmd, now, policy, fresh)
    if isinstance(cmd, ContractSetPrepared):
        return _prepared(state, cmd, now, policy, fresh)
    if isinstance(cmd, ContractorAgreed | ContractorRejected | ContractForwarded):
        return _review_step(state, cmd, now, acted_at, policy, fresh=fresh)
    if isinstance(cmd, ReviewLinkResendRequested):
        return _resend(state, cmd, now, policy, fresh)
    if isinstance(cmd, ReviewLinkExpiryReached):
        return _expiry(state, cmd, now)
    if isinstance(cmd, ContractorSignatureAccepted | CityAgreed | CitySignatureApplied):
        return _card_step(state, cmd, now)
    if isinstance(cmd, ContractSuretyCompleted):
        if state.status is S.CONCLUDED:
            return Decision()  # a late copy: the contract stands
        return _moved(state, cmd, now, surety_number=cmd.guarantee_number)
    if isinstance(cmd, ContractSent | ContractConcluded | ContractDeclined):
        return _cloudsign_step(state, cmd, now)
    raise TypeError(f"{type(cmd).__name__} is not a contract process message")
