"""``card-agent`` end to end through the real parts: pcscd + vpcd + the virtual card, the
gateway over loopback HTTP on PostgreSQL with the real registration handlers, and the
reference TSA. The PIN is typed once per prompt and never retried (PIN-1)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from card_agent.cli import main
from card_agent.virtualcard import VirtualCard
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import CardCredentials, DevPki
from hub.gateway.config import GatewayConfig
from hub.gateway.jobs import create_job
from hub.gateway.models import SigningJobRow
from tests.card.fixtures import PIN, READER, require_vpcd, seat, wait_reader
from tests.card.hubside import (
    COMPANIES,
    ENTITY,
    PASSWORD,
    USER_A,
    drive,
    gateway_app,
    seed_qualification,
)
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.card.server import LoopbackServer

pytestmark = [pytest.mark.pcsc, pytest.mark.tsa, pytest.mark.postgres]

CONTACT = {"contact_name": "営業部", "postal_code": "123-0000", "address": COMPANIES[USER_A][2],
           "person_name": "日立 次郎", "phone": "044-812-7358",
           "email": "ic-card@example.jp", "email_confirmation": "ic-card@example.jp"}


class ScriptedConsole:
    """Answers prompts from a script and records what the agent printed."""

    def __init__(self, pins: list[str], confirm: bool = True,
                 swap: Callable[[], None] | None = None) -> None:
        self.pins = pins
        self.swap = swap
        self.pin_prompts: list[str] = []
        self.confirm_answer = confirm
        self.lines: list[str] = []

    def say(self, text: str) -> None:
        self.lines.append(text)

    def ask_pin(self, prompt: str) -> str:
        self.pin_prompts.append(prompt)
        return self.pins.pop(0)

    def ask_secret(self, prompt: str) -> str:
        return PASSWORD

    def confirm(self, prompt: str) -> bool:
        return self.confirm_answer

    def wait_for_card_swap(self, prompt: str) -> None:
        assert self.swap is not None, "no card swap expected"
        self.lines.append(prompt)
        self.swap()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def creds(pki: DevPki) -> CardCredentials:
    return pki.issue_card(COMPANIES[USER_A][1], COMPANIES[USER_A][2], 9501)


@pytest.fixture
def vcard(creds: CardCredentials) -> Iterator[VirtualCard]:
    require_vpcd()
    card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    yield card
    card.stop()


@pytest.fixture
def hub(pg_engine: Engine, pki: DevPki) -> Iterator[tuple[str, GatewayConfig]]:
    cfg = GatewayConfig(engine=pg_engine, card_roots=pki.trust_roots,
                        signature_roots=pki.trust_roots)
    seed_qualification(pg_engine, USER_A, cfg.now())
    stop, done = threading.Event(), set[int]()

    def pipeline() -> None:  # the registration consumer, as the hub would run it
        while not stop.wait(0.1):
            drive(pg_engine, cfg.now(), done)

    worker = threading.Thread(target=pipeline, daemon=True)
    worker.start()
    with LoopbackServer(gateway_app(cfg)) as server:
        yield server.url, cfg
    stop.set()
    worker.join(5)


@pytest.fixture(scope="module")
def tsa_url(pki: DevPki) -> Iterator[str]:
    with ReferenceTsa(pki) as server:
        yield server.url


def _args(hub_url: str, pki: DevPki, creds: CardCredentials, tsa_url: str) -> list[str]:
    return ["--hub", hub_url, "--reader", READER, "--tsa-url", tsa_url,
            "--trust-roots", str(pki.root.cert_path), "--chain", str(pki.card_ca.cert_path),
            "--entity", ENTITY, "--system", "e-contract", "--domain", "works"]


def _register(base: list[str], tmp_path: Path) -> ScriptedConsole:
    inputs = tmp_path / "registration.json"
    inputs.write_text(json.dumps({
        "procuring_entity": ENTITY, "system": "e-contract", "domain": "works",
        "user_id": USER_A, "trade_name": COMPANIES[USER_A][0], "department_name": "営業部",
        "representative_contact": CONTACT, "card_department_contact": CONTACT,
    }, ensure_ascii=False), encoding="utf-8")
    console = ScriptedConsole([PIN])
    assert main([*base, "register", "--input", str(inputs)], console) == 0, console.text
    return console


def test_register_prints_company_id_and_summary(
    vcard: VirtualCard, hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials,
    tsa_url: str, tmp_path: Path,
) -> None:
    console = _register(_args(hub[0], pki, creds, tsa_url), tmp_path)
    assert "企業ID / company ID : " in console.text
    assert COMPANIES[USER_A][0] in console.text
    assert console.pin_prompts == ["PIN(残り3回): "]


def test_wrong_pin_is_reported_once_and_never_retried(
    vcard: VirtualCard, hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials,
    tsa_url: str, tmp_path: Path,
) -> None:
    base = _args(hub[0], pki, creds, tsa_url)
    console = ScriptedConsole(["0000", PIN])
    assert main([*base, "login"], console) == 3, console.text
    status = ScriptedConsole([])
    assert main([*base, "pin-status"], status) == 0
    assert "retries left: 2" in status.text
    assert len(console.pin_prompts) == 1  # PIN-1: never retried automatically
    assert "[PIN-1]" in console.text
    assert "残り2回" in console.text
    assert "0000" not in console.text
    for wrong in ("1111", "2222"):
        assert main([*base, "verify-pin"], ScriptedConsole([wrong])) in (3, 4)
    locked = ScriptedConsole([PIN])
    assert main([*base, "login"], locked) == 4
    assert locked.pin_prompts == []  # a locked card is reported, not tried
    assert "ロック" in locked.text


def test_sign_job_at_the_edge_and_hold_in_a_tsa_window(
    vcard: VirtualCard, hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials,
    tsa_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, cfg = hub
    base = _args(url, pki, creds, tsa_url)
    _register(base, tmp_path)
    with cfg.transaction() as session:
        job_id = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                            subject="北東市道改良工事", parties=["北東市", COMPANIES[USER_A][0]],
                            amount_yen=48_400_000, document=make_pdf(200_000),
                            now=cfg.now()).id
    declined = ScriptedConsole([PIN, PIN], confirm=False)
    assert main([*base, "sign", job_id], declined) == 0
    assert "not signed" in declined.text
    assert "48,400,000 円" in declined.text  # the hub's description, shown apart
    assert "このPCで読み取り" in declined.text  # what the PDF itself says comes first
    assert "ページ / pages : 1" in declined.text
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    window = f"fixed {(now - hour).isoformat()} {(now + hour).isoformat()}"
    monkeypatch.setenv("CARD_AGENT_TSA_MAINTENANCE", json.dumps([window]))
    held = ScriptedConsole([PIN, PIN])
    assert main([*base, "sign", job_id], held) == 5
    assert "[WIN-3]" in held.text
    monkeypatch.delenv("CARD_AGENT_TSA_MAINTENANCE")
    signing = ScriptedConsole([PIN, PIN])
    assert main([*base, "sign", job_id], signing) == 0, signing.text
    with cfg.transaction() as session:
        row = session.get(SigningJobRow, job_id)
        assert row is not None
        assert row.status == "signed"
        assert row.signer_serial == "9501"


def test_unregistered_card_cannot_log_in(
    vcard: VirtualCard, hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials,
    tsa_url: str,
) -> None:
    console = ScriptedConsole([PIN])
    assert main([*_args(hub[0], pki, creds, tsa_url), "login"], console) == 1
    assert "[REG-1]" in console.text


def test_renewal_old_card_then_new_card_and_the_old_one_is_refused(
    vcard: VirtualCard, hub: tuple[str, GatewayConfig], pki: DevPki, creds: CardCredentials,
    tsa_url: str, tmp_path: Path,
) -> None:
    base = _args(hub[0], pki, creds, tsa_url)
    _register(base, tmp_path)
    new_creds = pki.issue_card(COMPANIES[USER_A][1], COMPANIES[USER_A][2], 9502)
    cards: dict[str, VirtualCard] = {"current": vcard}

    def swap(to: CardCredentials) -> None:
        cards["current"].stop()
        wait_reader(present=False)
        cards["current"] = seat(VirtualCard(to.cert_der, to.key_path, PIN).start())

    inputs = tmp_path / "renewal.json"
    inputs.write_text(json.dumps({"procuring_entity": ENTITY, "system": "e-contract",
                                  "domain": "works"}), encoding="utf-8")
    console = ScriptedConsole([PIN, PIN], swap=lambda: swap(new_creds))
    try:
        assert main([*base, "renew", "--input", str(inputs)], console) == 0, console.text
        assert "serial 9502" in console.text
        assert len(console.pin_prompts) == 2  # RNW-6: both cards, old first
        assert main([*base, "login"], ScriptedConsole([PIN])) == 0
        swap(creds)
        refused = ScriptedConsole([PIN])
        assert main([*base, "login"], refused) == 1
        assert "[RNW-7]" in refused.text  # replaced by renewal
    finally:
        if cards["current"] is not vcard:
            cards["current"].stop()
