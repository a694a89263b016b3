"""Staff identities and cases for the staff routes' tests: one static token standing for
every entity and role (docs/identity.md), and a case of a given entity and status."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

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
