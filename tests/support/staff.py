"""Staff identities and cases for the staff routes' tests: one static token standing for
every entity and role (docs/identity.md), a case of a given entity and status, and the
registration pipeline's answers as the staff's registration list reads them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from hub.identity import Role, StaffIdentity
from hub.settings import StaffTokenSettings
from pipelines.contract.state import CaseState
from schemas.contract import ContractParty, ContractRoute, ContractStatus

TOKEN = "test-staff-token-for-every-entity"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AT = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)


def every_entity(token: str = TOKEN) -> StaffIdentity:
    return StaffIdentity(tokens=[StaffTokenSettings(
        sha256=hashlib.sha256(token.encode()).hexdigest(), subject="test-staff", kind="client",
        entities=("*",), roles=tuple(r.value for r in Role))])


def case(case_id: str, entity: str, officer: str, status: ContractStatus) -> CaseState:
    return CaseState(
        case_id=case_id, procuring_entity=entity, subject=f"{entity} 道路補修工事",
        amount_yen=12_000_000, contractor_network="saitama", contractor_user_id="U0001",
        contractor_name="デモ建設株式会社", city_name=entity,
        city_officer=ContractParty(name="担当", email=officer), route=ContractRoute.CARD,
        status=status, opened_at=AT, updated_at=AT,
        authorized=ContractParty(name="代表 一郎", email="boss@demo.co.jp"))


def registration_answers(engine: Engine, entity: str, *, rejected: str | None = None,
                         user_id: str = "U0001") -> str:
    """One answer of the registration pipeline for ``entity`` kept as the gateway keeps it
    (hub/gateway/outcomes.py): a rejection naming the rule ``rejected``, else a contact
    change done. Returns the request's id."""
    import uuid
    from types import SimpleNamespace

    from sqlmodel import Session

    from hub.gateway.outcomes import handle_registration_event
    from schemas.envelope import new_envelope
    from schemas.registration import CardRef, ContactChanged, Domain, RegistrationRejected
    from schemas.rejection import RuleViolation

    card = CardRef(issuer="OU=CoreCA,O=eJapan2 Tech Center,C=JP", serial="1234")
    payload: Any
    if rejected is not None:
        payload = RegistrationRejected(
            command_type="registration.card-registration-requested", procuring_entity=entity,
            domain=Domain.WORKS, user_id=user_id, card=card, violations=(RuleViolation(
                rule_id=rejected, message_ja="拒否", message_en="refused",
                next_step_ja="確認してください。", next_step_en="Check it."),))
    else:
        payload = ContactChanged(procuring_entity=entity, network="saitama",
                                 domain=Domain.WORKS, user_id=user_id, card=card,
                                 department_name="工事部")
    cause = uuid.uuid4()
    envelope = new_envelope(payload, correlation_id=str(cause), procuring_entity=entity,
                            producer="test", causation_id=cause)
    with Session(engine) as db, db.begin():
        handle_registration_event(SimpleNamespace(session=db, now=AT),  # type: ignore[arg-type]
                                  envelope)
    return str(cause)
