"""``card-agent serve`` over real HTTP, with pcscd + vpcd + the virtual card, the gateway on
PostgreSQL with the real registration handlers, and the reference TSA.

What a browser relies on is checked at the wire here (the browser itself in
tests/e2e/test_card_agent_browser.py): the Origin gate and CORS (AGT-1), the Host gate
against DNS rebinding (AGT-2), pairing (AGT-3), the PIN typed only in the agent's own
page with the retries shown and the lock explained (PIN-1), and the document the agent
shows from the PDF itself before signing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas
from sqlalchemy.engine import Engine

from card_agent.client import hub_http_client
from card_agent.pcsc import PcscBackend
from card_agent.serve import AgentService
from card_agent.tsa import AgentTimeStamper
from card_agent.virtualcard import VirtualCard
from devkit.pki import CardCredentials, DevPki
from hub.gateway.config import GatewayConfig
from hub.gateway.jobs import create_job
from hub.gateway.models import SigningJobRow
from tests.card.fixtures import PIN, READER
from tests.card.hubside import COMPANIES, ENTITY, USER_A
from tests.integration.test_card_agent_cli import (  # the same real parts
    _args,
    _register,
    creds,
    hub,
    pki,
    tsa_url,
    vcard,
)

# The entity, system and domain the agent logs in to (as `card-agent serve --entity`).
WHERE = {"procuring_entity": ENTITY, "system": "e-contract", "domain": "works"}

pytestmark = [pytest.mark.pcsc, pytest.mark.tsa, pytest.mark.postgres]

__all__ = ["creds", "hub", "pki", "tsa_url", "vcard"]  # fixtures, imported for pytest

HUB_ORIGIN = "https://hub.city.example"
EVIL = "https://evil.example"


def contract_pdf(amount_yen: int, pages: int = 2) -> bytes:
    """A contract whose text states its own title, parties and amount (CID font, Japanese)."""
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    out = BytesIO()
    page = canvas.Canvas(out)
    page.setTitle("工事請負契約書 北東市道改良工事")
    page.setFont("HeiseiMin-W3", 12)
    for y, line in ((770, "工事請負契約書"), (740, "発注者: 北東市"),
                    (720, f"受注者: {COMPANIES[USER_A][0]}"),
                    (700, f"契約金額: {amount_yen:,}円")):
        page.drawString(72, y, line)
    for n in range(2, pages + 1):
        page.showPage()
        page.setFont("HeiseiMin-W3", 12)
        page.drawString(72, 770, f"第{n}頁")
    page.save()
    return out.getvalue()


@pytest.fixture
def agent(hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials,
          tsa_url: str) -> Iterator[AgentService]:
    http = hub_http_client(hub[0])
    service = AgentService(backend=PcscBackend(), hub=http, where=WHERE, origins=[HUB_ORIGIN],
                           chain=creds.chain, reader=READER, port=0,
                           tsa=AgentTimeStamper(tsa_url, pki.trust_roots))
    service.start()
    yield service
    service.stop()
    http.close()


@pytest.fixture
def client(agent: AgentService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{agent.port}", timeout=60) as http:
        yield http


def paired(client: httpx.Client) -> dict[str, str]:
    reply = client.post("/pair", headers={"Origin": HUB_ORIGIN})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == HUB_ORIGIN
    return {"Origin": HUB_ORIGIN, "Authorization": f"Bearer {reply.json()['token']}"}


def start(client: httpx.Client, headers: dict[str, str], kind: str,
          **params: Any) -> dict[str, Any]:
    reply = client.post("/operations", headers=headers, json={"kind": kind, "params": params})
    assert reply.status_code == 201, reply.text
    found: dict[str, Any] = reply.json()
    return found


def type_pin(client: httpx.Client, agent: AgentService, op_id: str, pin: str) -> str:
    """The person types ``pin`` in the agent's own page (a form on the agent's origin)."""
    reply = client.post(f"/op/{op_id}/pin", data={"pin": pin},
                        headers={"Origin": f"http://127.0.0.1:{agent.port}"})
    assert reply.status_code == 200
    return reply.text


def test_another_origin_cannot_call_the_agent(
    vcard: VirtualCard, client: httpx.Client, agent: AgentService,
) -> None:
    preflight = client.options("/status", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    for method, path in (("POST", "/pair"), ("GET", "/status"), ("POST", "/operations")):
        reply = client.request(method, path, headers={"Origin": EVIL}, json={"kind": "login"})
        assert reply.status_code == 403
        assert "access-control-allow-origin" not in reply.headers
        assert reply.json()["detail"]["violations"][0]["rule_id"] == "AGT-1"
    # no Origin at all (another program, a top-level navigation) is no hub page either
    assert client.get("/status").status_code == 403
    # the hub's own origin passes the preflight, named exactly (no wildcard)
    ok = client.options("/status", headers={"Origin": HUB_ORIGIN,
                                            "Access-Control-Request-Method": "GET"})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == HUB_ORIGIN


def test_rebinding_host_and_unpaired_pages_are_refused(
    vcard: VirtualCard, client: httpx.Client, agent: AgentService,
) -> None:
    rebound = client.post("/pair", headers={"Origin": HUB_ORIGIN,
                                            "Host": f"evil.example:{agent.port}"})
    assert rebound.status_code == 421
    assert rebound.json()["detail"]["violations"][0]["rule_id"] == "AGT-2"
    assert client.get("/", headers={"Host": f"hub.city.example:{agent.port}"}
                      ).status_code == 421
    unpaired = client.get("/status", headers={"Origin": HUB_ORIGIN})
    assert unpaired.status_code == 401
    assert unpaired.json()["detail"]["violations"][0]["rule_id"] == "AGT-3"
    forged = client.get("/status", headers={"Origin": HUB_ORIGIN,
                                            "Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401
    headers = paired(client)
    status = client.get("/status", headers=headers).json()
    assert READER in status["readers"]
    assert status["pin"] == {"retries_left": 3, "locked": False}
    assert status["card"]["serial"] == "9501"
    # a token is bound to the origin that paired
    assert client.get("/status", headers={**headers, "Origin": "https://other-hub.example"}
                      ).status_code == 403
    cert = client.get("/certificate", headers=headers).json()
    assert cert["serial"] == "9501"
    assert cert["der"]


def test_wrong_pins_show_retries_then_the_lock_page(
    vcard: VirtualCard, client: httpx.Client, agent: AgentService,
) -> None:
    headers = paired(client)
    op = start(client, headers, "login")
    assert op["url"].startswith(f"http://127.0.0.1:{agent.port}/op/")
    page = client.get(f"/op/{op['id']}").text
    assert "残り3回" in page
    assert 'type=password name=pin' in page
    first = type_pin(client, agent, op["id"], "1111")
    assert "[PIN-1]" in first
    assert "残り2回" in first
    assert vcard.retries == 2
    second = type_pin(client, agent, op["id"], "2222")
    assert "残り1回" in second
    third = type_pin(client, agent, op["id"], "3333")
    assert "ロックされています" in third
    assert "認証局" in third
    assert "name=pin" not in third
    assert "1111" not in first + second + third
    outcome = client.get(f"/operations/{op['id']}", headers=headers).json()
    assert outcome["status"] == "failed"
    assert outcome["violations"][0]["rule_id"] == "PIN-1"
    # a new operation on the locked card: the page explains, the card is not tried
    again = start(client, headers, "login")
    locked = client.get(f"/op/{again['id']}").text
    assert "認証局" in locked
    assert "name=pin" not in locked
    # a form posted from a hub page (not the agent's own) cannot present a PIN
    refused = client.post(f"/op/{again['id']}/pin", data={"pin": PIN},
                          headers={"Origin": HUB_ORIGIN})
    assert refused.status_code == 403


def _login(client: httpx.Client, agent: AgentService, headers: dict[str, str]) -> str:
    op = start(client, headers, "login")
    assert "完了しました" in type_pin(client, agent, op["id"], PIN)
    done = client.get(f"/operations/{op['id']}", headers=headers).json()
    assert done["status"] == "done", done
    assert done["result"]["user_id"] == USER_A
    token: str = done["result"]["token"]
    return token


def test_the_preview_shows_the_pdf_not_the_hubs_description_and_signs(
    vcard: VirtualCard, client: httpx.Client, agent: AgentService,
    hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials, tsa_url: str,
    tmp_path: Path, pg_engine: Engine,
) -> None:
    url, cfg = hub
    _register(_args(url, pki, creds, tsa_url), tmp_path)
    headers = paired(client)
    hub_session = _login(client, agent, headers)
    pdf = contract_pdf(12_100_000)
    with cfg.transaction() as session:
        job_id = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                            subject="北東市道改良工事", parties=["北東市", COMPANIES[USER_A][0]],
                            amount_yen=99_000_000, document=pdf, now=cfg.now()).id
    op = start(client, headers, "sign", job_id=job_id, hub_session=hub_session)
    page = client.get(f"/op/{op['id']}").text
    shown = dict(re.findall(r"<td id=(doc-[a-z0-9]+)>(.*?)</td>", page))
    assert shown["doc-amount"] == "12,100,000 円"
    assert shown["doc-pages"] == "2"
    assert "北東市" in shown["doc-parties"]
    assert COMPANIES[USER_A][0] in shown["doc-parties"]
    assert "工事請負契約書" in shown["doc-title"]
    import hashlib

    assert hashlib.sha256(pdf).hexdigest() in shown["doc-sha256"]
    assert "id=mismatch" in page  # the hub said 99,000,000 円
    png = client.get(f"/op/{op['id']}/preview.png")
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    assert "完了しました" in type_pin(client, agent, op["id"], PIN)
    with cfg.transaction() as session:
        row = session.get(SigningJobRow, job_id)
        assert row is not None
        assert row.status == "signed"
        assert row.signer_serial == "9501"


def test_card_pulled_mid_signature_gives_a_clear_page_and_no_document(
    vcard: VirtualCard, client: httpx.Client, agent: AgentService,
    hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials, tsa_url: str,
    tmp_path: Path,
) -> None:
    url, cfg = hub
    _register(_args(url, pki, creds, tsa_url), tmp_path)
    headers = paired(client)
    hub_session = _login(client, agent, headers)
    with cfg.transaction() as session:
        job_id = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                            subject="北東市道改良工事", parties=["北東市"], amount_yen=1,
                            document=contract_pdf(1), now=cfg.now()).id
    op = start(client, headers, "sign", job_id=job_id, hub_session=hub_session)
    vcard.remove_on_sign()
    page = type_pin(client, agent, op["id"], PIN)
    assert "署名は行われていません" in page
    assert "name=pin" not in page
    assert vcard.wait_pulled()
    outcome = client.get(f"/operations/{op['id']}", headers=headers).json()
    assert outcome["status"] == "failed"
    assert "result" not in outcome
    with cfg.transaction() as session:
        row = session.get(SigningJobRow, job_id)
        assert row is not None
        assert row.status == "pending"
        assert row.signed_document is None
