"""The connectors' control API on the staff's identity (hub/control.py, docs/identity.md):
only the 管理者 (``admin`` role) steers connectors: no valid token is 401 (IAM-1), another
role 403 (IAM-2), both in Japanese and English; pause, resume and restart, refused ones
too, are rows of the hash-chained audit trail with the person, and the chain verifies.
The real pause of a consumer through Kafka is tests/e2e/test_connector_control.py."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.control import mount
from hub.identity import StaffIdentity
from hub.settings import StaffTokenSettings
from pipelines.audit import AuditRecord, verify

pytestmark = pytest.mark.postgres

ADMIN, OFFICER = "admin-token-for-the-control-api", "officer-token-for-the-control-api"


def token(value: str, subject: str, roles: tuple[str, ...]) -> StaffTokenSettings:
    return StaffTokenSettings(sha256=hashlib.sha256(value.encode()).hexdigest(),
                              subject=subject, kind="person", email=f"{subject}@city.example.jp",
                              entities=("kawagoe-city",), roles=roles)


class Connector:
    async def health(self) -> Any:
        return SimpleNamespace(state=SimpleNamespace(value="up"), detail="")


class Running:
    name = "erp"
    spec = SimpleNamespace(name="connector.erp")
    plugin = SimpleNamespace(consumes=(), description="ERP",
                             settings=SimpleNamespace(model_config={"env_prefix": "HUB_ERP_"}))
    connector = Connector()
    last_error = None
    restarts = 0

    async def restart(self) -> None:
        self.restarts += 1


@pytest.fixture
def http(engine: Engine) -> TestClient:
    app = FastAPI()
    identity = StaffIdentity(tokens=[token(ADMIN, "kanri", ("admin",)),
                                     token(OFFICER, "keiyaku", ("contract-officer",))])
    mount(app, [Running()], lambda: [], identity, engine=engine)  # type: ignore[list-item]
    return TestClient(app)


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def rows(engine: Engine) -> list[AuditRecord]:
    with Session(engine) as session:
        return list(session.exec(sa.select(AuditRecord).order_by(  # type: ignore[call-overload]
            AuditRecord.id)).scalars())  # type: ignore[arg-type]


def test_only_the_administrator_steers_connectors(http: TestClient, engine: Engine) -> None:
    nobody = http.put("/connectors/erp/pause")
    assert nobody.status_code == 401
    assert nobody.json()["detail"]["violations"][0]["rule_id"] == "IAM-1"
    officer = http.put("/connectors/erp/pause", headers=auth(OFFICER))
    assert officer.status_code == 403
    (violation,) = officer.json()["detail"]["violations"]
    assert violation["rule_id"] == "IAM-2"
    assert "管理者" in violation["message_ja"]
    assert "admin" in violation["message_en"]
    assert http.get("/connectors", headers=auth(OFFICER)).status_code == 403
    listed = http.get("/connectors", headers=auth(ADMIN))
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json()] == ["erp"]
    assert http.put("/connectors/erp/pause", headers=auth(ADMIN)).status_code == 200
    assert http.put("/connectors/erp/resume", headers=auth(ADMIN)).status_code == 200
    assert http.post("/connectors/erp/restart", headers=auth(ADMIN)).status_code == 200
    unknown = http.put("/connectors/nope/pause", headers=auth(ADMIN))
    assert unknown.status_code == 404
    assert unknown.json()["detail"]["violations"][0]["rule_id"] == "OPS-1"
    seen = [(r.action, r.target, r.actor, r.role, r.entity, r.outcome) for r in rows(engine)]
    assert seen == [
        ("connectors.access", "/connectors/erp/pause", "keiyaku@city.example.jp", "",
         "kawagoe-city", "denied"),
        ("connectors.access", "/connectors", "keiyaku@city.example.jp", "", "kawagoe-city",
         "denied"),
        ("connectors.pause", "erp", "kanri@city.example.jp", "admin", "kawagoe-city", "ok"),
        ("connectors.resume", "erp", "kanri@city.example.jp", "admin", "kawagoe-city", "ok"),
        ("connectors.restart", "erp", "kanri@city.example.jp", "admin", "kawagoe-city", "ok"),
        ("connectors.pause", "nope", "kanri@city.example.jp", "admin", "kawagoe-city",
         "refused")]
    with Session(engine) as session:
        chain = verify(session)
    assert chain.ok, chain.reason
    assert chain.checked == len(seen)
