"""The built-in local user store (small installations, no OpenID Connect provider): `hub
users add` keeps scrypt hashes; `POST /auth/token` logs a person in; the token carries
the same entities and roles as the provider's would (IAM-1, IAM-2, IAM-3)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.cli import main
from hub.contract.archive_api import archive_router
from hub.identity import LocalIssuer, Principal, Role, staff_identity
from hub.settings import StaffSettings
from pipelines.contract.store import save_case
from schemas.contract import ContractStatus
from tests.support.staff import case

PASSWORD = "correct horse battery staple"


def add_user(monkeypatch: pytest.MonkeyPatch, users: Path, name: str, email: str,
             entity: str, role: str) -> int:
    monkeypatch.setenv("HUB_STAFF__USERS_FILE", str(users))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return main(["users", "add", name, "--email", email, "--entity", entity, "--role", role,
                 "--password-stdin"])


@pytest.fixture
def http(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> Iterator[TestClient]:
    users = tmp_path / "staff-users.json"
    assert add_user(monkeypatch, users, "kawagoe", "keiyaku@city.kawagoe.example.jp",
                    "kawagoe-city", "contract-officer") == 0
    capsys.readouterr()
    with Session(engine) as db, db.begin():
        save_case(db, case("K-1", "kawagoe-city", "keiyaku@city.kawagoe.example.jp",
                           ContractStatus.APPLIED))
        save_case(db, case("S-1", "saitama-pref", "x@pref.saitama.example.jp",
                           ContractStatus.APPLIED))
    identity = staff_identity(StaffSettings(users_file=users), tmp_path)
    from hub.staff_api import staff_router

    app = FastAPI()
    app.include_router(archive_router(engine, (), identity=identity))
    app.include_router(staff_router(engine, identity))
    with TestClient(app) as client:
        yield client


def test_the_store_keeps_only_a_scrypt_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "u.json"
    assert add_user(monkeypatch, users, "a", "a@example.jp", "kawagoe-city", "auditor") == 0
    text = users.read_text()
    assert PASSWORD not in text
    assert PASSWORD not in capsys.readouterr().out
    (user,) = json.loads(text)["users"]
    assert user["password"].startswith("scrypt$")
    assert users.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "b", "--email", "b@example.jp", "--entity", "x",
                 "--role", "auditor", "--password-stdin"]) == 2


def test_a_local_user_logs_in_and_sees_only_their_entity(http: TestClient,
                                                         engine: Engine) -> None:
    wrong = http.post("/auth/token", data={"grant_type": "password", "username": "kawagoe",
                                           "password": PASSWORD + "x"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"]["violations"][0]["rule_id"] == "IAM-1"
    nobody = http.post("/auth/token", data={"grant_type": "password", "username": "nobody",
                                            "password": PASSWORD})
    assert nobody.status_code == 401
    token = http.post("/auth/token", data={"grant_type": "password", "username": "kawagoe",
                                           "password": PASSWORD})
    assert token.status_code == 200, token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert [c["case_id"] for c in http.get("/contracts", headers=auth).json()] == ["K-1"]
    other = http.get("/contracts/S-1/document", headers=auth)
    assert (other.status_code, other.json()["detail"]["violations"][0]["rule_id"]) == (
        403, "IAM-3")
    with Session(engine) as db:
        actors = {r.actor for r in audit.rows(db)}
    assert actors == {"keiyaku@city.kawagoe.example.jp"}


def test_a_local_token_expires_and_is_bound_to_the_hubs_key(tmp_path: Path) -> None:
    who = Principal(subject="local:a", kind="person", entities=frozenset({"kawagoe-city"}),
                    roles=frozenset({Role.APPROVER}), email="a@example.jp")
    now = [datetime(2026, 6, 1, tzinfo=UTC).timestamp()]
    issuer = LocalIssuer(tmp_path / "key", audience="procurement-hub", ttl_s=600,
                         clock=lambda: now[0])
    token = issuer.issue(who)
    assert issuer.verify(token).roles == {Role.APPROVER}
    other = LocalIssuer(tmp_path / "other-key", audience="procurement-hub", ttl_s=600,
                        clock=lambda: now[0])
    with pytest.raises(ValueError, match="signature"):
        other.verify(token)
    now[0] += 601
    with pytest.raises(ValueError, match="expired"):
        issuer.verify(token)
