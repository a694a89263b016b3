"""The staff router as ``hub run``'s default wiring mounts it: real HTTP (httpx over ASGI)
against the real app and database, SQLite and PostgreSQL (CON-6, CON-7).

Without a token, or with a wrong one, every staff endpoint answers 401 with the IAM-1
violation in Japanese and English and what to do; with a configured staff token the
list answers 200 and a contract set upload 202. The token never appears in the logs.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import Session

from devkit.pki import ensure_pki
from hub.bootstrap import default_wiring
from hub.db import OutboxRecord, create_db_engine
from hub.outbox import load_headers
from hub.settings import Settings, StaffSettings
from hub.staff import token_sha256
from pipelines.contract.state import CaseState
from pipelines.contract.store import save_case
from schemas.contract import (
    ContractParty,
    ContractRoute,
    ContractSetPrepared,
    ContractStatus,
)
from schemas.topics import Topics
from schemas.wire import decode
from tests.card.pdfs import make_pdf

pytestmark = pytest.mark.postgres

TOKEN = "staff-token-for-the-test-0123456789"
CASE = "R8-0610"
OUTBOX = OutboxRecord.__table__


def applied_case() -> CaseState:
    at = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)
    boss = ContractParty(name="足利 一郎", email="boss@demo.co.jp")
    return CaseState(
        case_id=CASE, procuring_entity="ashikaga-city", subject="橋梁補修工事",
        amount_yen=48_000_000, contractor_network="tochigi", contractor_user_id="U0610",
        contractor_name="デモ建設株式会社", city_name="足利市",
        city_officer=ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp"),
        route=ContractRoute.CARD, status=ContractStatus.APPLIED, opened_at=at, updated_at=at,
        authorized=boss)


@pytest.fixture
async def http(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setattr("hub.bootstrap.RUN_DIR", tmp_path)  # the embedded default's files
    # a configured city token (never opened here) keeps the local SoftHSM2 set-up out
    monkeypatch.setenv("HUB_CITYSIGNER_PIN", "not-used-in-this-test")
    roots = ensure_pki(tmp_path / "pki").root.cert_path  # the PKI the gateway's default uses
    monkeypatch.setenv("HUB_TSA_TRUST_ROOTS", json.dumps([str(roots)]))
    wiring = default_wiring(Settings(database_url=db_url,  # type: ignore[arg-type]
                                     staff=StaffSettings(token_sha256=(token_sha256(TOKEN),))))
    with Session(wiring.engine) as session, session.begin():
        save_case(session, applied_case())
    app = FastAPI()
    for router in wiring.routers:
        app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://hub.test") as client:
        yield client
    for close in wiring.closers:
        if inspect.isawaitable(result := close()):
            await result
    wiring.engine.dispose()


def refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    (violation,) = response.json()["detail"]["violations"]
    assert violation["rule_id"] == "IAM-1"
    assert "職員" in violation["message_ja"]
    assert "staff" in violation["message_en"]
    assert "Authorization: Bearer" in violation["next_step_en"]
    assert "Bearer" in violation["next_step_ja"]


async def test_staff_endpoints_refuse_without_a_token(http: httpx.AsyncClient) -> None:
    refused(await http.get("/contracts"))
    refused(await http.get(f"/contracts/{CASE}/certificate"))
    refused(await http.post(f"/contracts/{CASE}/contract-set", params={"title": "請負契約書"},
                            content=make_pdf(2_000), headers={"content-type": "application/pdf"}))
    refused(await http.post(f"/contracts/{CASE}/city-agreement",
                            json={"by": "keiyaku@city.ashikaga.jp"}))


async def test_staff_endpoints_refuse_a_wrong_token(http: httpx.AsyncClient) -> None:
    for header in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN,
                   f"Bearer {token_sha256(TOKEN)}"):  # the digest is not the token
        refused(await http.get("/contracts", headers={"Authorization": header}))


async def test_staff_token_lists_and_uploads_the_contract_set(
        http: httpx.AsyncClient, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listed = await http.get("/contracts", headers=auth)
    assert listed.status_code == 200, listed.text
    assert [item["case_id"] for item in listed.json()] == [CASE]
    sent = await http.post(f"/contracts/{CASE}/contract-set", params={"title": "請負契約書"},
                           content=make_pdf(2_000, "Contract R8-0610"),
                           headers={**auth, "content-type": "application/pdf"})
    assert sent.status_code == 202, sent.text
    assert sent.json()["request_id"]
    assert TOKEN not in caplog.text
    # the review page is the contractor's, not the staff's: it stays outside the check
    assert (await http.get("/contract/review/00000000-0000-0000-0000-000000000000")
            ).status_code == 404
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(OUTBOX).where(
            OUTBOX.c.topic == Topics.CONTRACT_COMMANDS.name)))
    engine.dispose()
    (command,) = (decode(row.value, load_headers(row.headers)).payload for row in rows)
    assert isinstance(command, ContractSetPrepared)  # the step went out to the process
    assert command.case_id == CASE
