"""The ERP connector (zeep) against the reference ERP (spyne over HTTP on loopback).

Registrations, idempotency on the business key, SOAP faults → rule IDs, and the
fault tests: peer down, slow past the timeout, garbage, hostile XML (XXE and
entity expansion refused), inside a maintenance window.
"""

import asyncio
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from connectors._shared import (
    BreakerState,
    CircuitOpenError,
    HealthState,
    PeerInMaintenance,
    PermanentPeerError,
    TransientPeerError,
)
from connectors.erp import SHIPPED_WSDL, ErpConnector, ErpSettings, rejection_for
from connectors.erp.effects import effects
from connectors.erp.peer import ErpPeer
from connectors.mail.peer import free_port
from schemas.envelope import JST, Envelope, new_envelope
from schemas.erp import (
    ErpRegistered,
    ErpRegistrationKind,
    ErpRegistrationRejected,
    ErpRegistrationRequested,
)
from schemas.registry import Payload
from schemas.topics import Topics, TopicSpec

pytestmark = pytest.mark.soap

CONTRACTOR = "1234567890123456"
VALID_T = "T9234567890123"  # 法人番号 9234567890123 has a valid check digit


def contract(key: str = "saitama-pref:R8-001:contract", amount: int = 10_000_000,
             number: str = "R8-001") -> ErpRegistrationRequested:
    return ErpRegistrationRequested(
        kind=ErpRegistrationKind.CONTRACT, business_key=key, contract_number=number,
        contractor_id=CONTRACTOR, contractor_name="○○建設株式会社", amount_jpy=amount,
        subject="県道○○線舗装工事", contract_date=date(2026, 11, 24),
        period_start=date(2026, 12, 1), period_end=date(2027, 3, 31))


def advance(amount: int, key: str = "saitama-pref:R8-001:advance",
            number: str = "R8-001") -> ErpRegistrationRequested:
    return ErpRegistrationRequested(
        kind=ErpRegistrationKind.ADVANCE_PAYMENT, business_key=key, contract_number=number,
        contractor_id=CONTRACTOR, contractor_name="○○建設株式会社", amount_jpy=amount,
        request_date=date(2026, 12, 2), surety_number="31072-0001M")


def payment(amount: int, invoice: str = VALID_T, key: str = "saitama-pref:R8-001:inv-1",
            number: str = "R8-001") -> ErpRegistrationRequested:
    return ErpRegistrationRequested(
        kind=ErpRegistrationKind.PAYMENT, business_key=key, contract_number=number,
        contractor_id=CONTRACTOR, contractor_name="○○建設株式会社", amount_jpy=amount,
        request_date=date(2027, 4, 10), invoice_number=invoice)


def connector_for(url: str, **extra: Any) -> ErpConnector:
    base: dict[str, Any] = {"url": url, "timeout_s": 2.0, "retry_attempts": 3,
                            "retry_base_s": 0.01, "retry_max_s": 0.05}
    return ErpConnector(ErpSettings(**{**base, **extra}))


@pytest.fixture
def peer() -> Iterator[ErpPeer]:
    with ErpPeer() as running:
        yield running


async def test_contract_advance_and_payment_are_registered(peer: ErpPeer) -> None:
    erp = connector_for(peer.url)
    registered = await erp.register(contract())
    assert registered.erp_reference.startswith("C-")
    assert not registered.duplicate
    assert (await erp.register(advance(4_000_000))).erp_reference.startswith("A-")
    assert (await erp.register(payment(6_000_000))).erp_reference.startswith("P-")
    assert peer.ledger.count() == 3
    await erp.aclose()


async def test_same_business_key_twice_is_one_registration(peer: ErpPeer) -> None:
    erp = connector_for(peer.url)
    first = await erp.register(contract())
    again = await erp.register(contract())
    assert again.duplicate
    assert again.erp_reference == first.erp_reference
    assert peer.ledger.count() == 1
    with pytest.raises(PermanentPeerError) as info:
        await erp.register(contract(amount=12_000_000))  # same key, other content
    assert info.value.rule_ids == ("CON-2",)
    assert "業務キー" in info.value.violations[0].message_ja
    assert peer.ledger.count() == 1


async def test_refusals_name_their_rules(peer: ErpPeer) -> None:
    erp = connector_for(peer.url)
    cases = [
        (advance(1_000_000, number="R8-999"), "SUR-6", "契約が登録されていません"),
        (payment(1_000, number="R8-999"), "INV-3", "契約が登録されていません"),
    ]
    for request, rule, text in cases:
        with pytest.raises(PermanentPeerError) as info:
            await erp.register(request)
        assert info.value.rule_ids == (rule,)
        assert text in info.value.violations[0].message_ja
        assert info.value.violations[0].next_step_en
    await erp.register(contract())
    with pytest.raises(PermanentPeerError) as bad_t:
        await erp.register(payment(1_000, invoice="T1234567890123"))
    assert bad_t.value.rule_ids == ("INV-1",)
    with pytest.raises(PermanentPeerError) as too_much:
        await erp.register(advance(4_000_001))
    assert too_much.value.rule_ids == ("SUR-6",)
    rejection = rejection_for(advance(4_000_001), too_much.value)
    assert rejection is not None
    assert rejection.violations[0].rule_id == "SUR-6"
    assert erp.guard.stats.attempts == erp.guard.stats.calls  # refusals are never retried
    assert peer.ledger.count() == 1


def test_served_wsdl_matches_the_shipped_one(peer: ErpPeer) -> None:
    def operations(xml: bytes) -> set[str]:
        tree = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        ns = {"wsdl": "http://schemas.xmlsoap.org/wsdl/"}
        return {op.get("name") for op in tree.iterfind("wsdl:portType/wsdl:operation", ns)}

    with urllib.request.urlopen(peer.url + "?wsdl", timeout=5) as answer:
        served = answer.read()
    shipped = operations(SHIPPED_WSDL.read_bytes())
    assert shipped == operations(served)
    assert {"RegisterContract", "RegisterAdvancePaymentRequest",
            "RegisterPaymentRequest"} <= shipped


async def test_peer_down_retried_then_nothing_lost_once_back() -> None:
    port = free_port()
    erp = connector_for(f"http://127.0.0.1:{port}/")
    with pytest.raises(TransientPeerError) as info:
        await erp.register(contract())
    assert info.value.attempts == 3
    assert len(info.value.history) == 3
    assert (await erp.health()).state is HealthState.DOWN
    with ErpPeer(port=port) as back:
        registered = await erp.register(contract())
        assert back.ledger.count() == 1
    assert registered.erp_reference.startswith("C-")


async def test_slow_peer_past_timeout_is_transient(peer: ErpPeer) -> None:
    peer.state.delay_s = 1.0
    erp = connector_for(peer.url, timeout_s=0.3, retry_attempts=2)
    with pytest.raises(TransientPeerError) as info:
        await erp.register(contract())
    assert info.value.attempts == 2
    assert "timeout" in info.value.reason.lower()


async def test_maintenance_configured_holds_without_calling(peer: ErpPeer) -> None:
    now = datetime.now(JST)
    begin, end = now - timedelta(hours=1), now + timedelta(hours=2)
    window = f"fixed {begin.isoformat()} {end.isoformat()}"
    erp = connector_for(peer.url, maintenance=(window,))
    with pytest.raises(PeerInMaintenance) as info:
        await erp.register(contract())
    assert info.value.retry_at > now + timedelta(minutes=119)
    assert peer.ledger.count() == 0
    assert (await erp.health()).state is HealthState.MAINTENANCE


async def test_maintenance_announced_by_the_erp_holds_until_its_end(peer: ErpPeer) -> None:
    until = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
    peer.state.maintenance_until = until
    erp = connector_for(peer.url)
    with pytest.raises(PeerInMaintenance) as info:
        await erp.register(contract())
    assert info.value.retry_at == until
    assert erp.guard.stats.attempts == 1  # a hold, not retried in place
    peer.state.maintenance_until = None
    assert not (await erp.register(contract())).duplicate


class _Canned(BaseHTTPRequestHandler):
    status = 200
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(self.status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def canned() -> Iterator[tuple[str, type[_Canned]]]:
    """A raw HTTP server on loopback answering every POST with a set status and body."""
    handler = type("Handler", (_Canned,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("status", "body"), [
    (200, b"this is not XML <<<"),
    (500, b"<html><body>Internal Server Error</body></html>"),
    (200, b"<?xml version='1.0'?><a>unclosed"),
    (503, b""),
])
async def test_garbage_is_transient(canned: tuple[str, type[_Canned]], status: int,
                                    body: bytes) -> None:
    url, handler = canned
    handler.status, handler.body = status, body
    erp = connector_for(url)
    with pytest.raises(TransientPeerError) as info:
        await erp.register(contract())
    assert info.value.attempts == 3


def soap_answer(prolog: str, text: str) -> bytes:
    return (f"<?xml version='1.0'?>{prolog}"
            "<soap11env:Envelope xmlns:soap11env='http://schemas.xmlsoap.org/soap/envelope/' "
            "xmlns:tns='urn:procurement-hub:erp:v1'><soap11env:Body>"
            "<tns:RegisterContractResponse><tns:RegisterContractResult>"
            f"<tns:business_key>saitama-pref:R8-001:contract</tns:business_key>"
            f"<tns:erp_reference>{text}</tns:erp_reference>"
            "<tns:registered_at>2026-11-24T03:00:00Z</tns:registered_at>"
            "<tns:duplicate>false</tns:duplicate>"
            "</tns:RegisterContractResult></tns:RegisterContractResponse>"
            "</soap11env:Body></soap11env:Envelope>").encode()


async def test_well_formed_answer_from_canned_server_is_read(
        canned: tuple[str, type[_Canned]]) -> None:
    """The hostile tests below differ from this one only in their DOCTYPE."""
    url, handler = canned
    handler.body = soap_answer("", "C-00000042")
    assert (await connector_for(url).register(contract())).erp_reference == "C-00000042"


@pytest.mark.parametrize("prolog", [
    "<!DOCTYPE e [<!ENTITY xxe SYSTEM 'file://{secret}'>]>",
    "<!DOCTYPE e [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
    "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>]>",
    "<!DOCTYPE e SYSTEM 'http://127.0.0.1:9/evil.dtd'>",
], ids=["xxe", "entity-expansion", "external-dtd"])
async def test_hostile_xml_is_refused(canned: tuple[str, type[_Canned]], prolog: str,
                                      tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    url, handler = canned
    entity = "&xxe;" if "xxe" in prolog else "&d;" if "ENTITY d" in prolog else "C-1"
    handler.body = soap_answer(prolog.format(secret=secret), entity)
    erp = connector_for(url, retry_attempts=1)
    with pytest.raises(TransientPeerError) as info:
        await erp.register(contract())
    assert "hostile XML refused" in info.value.reason
    assert "TOP-SECRET" not in str(info.value)


async def test_oversize_answer_is_refused_unread(canned: tuple[str, type[_Canned]]) -> None:
    url, handler = canned
    handler.body = soap_answer("", "C-" + "9" * 5000)
    erp = connector_for(url, retry_attempts=1, max_response_bytes=2000)
    with pytest.raises(TransientPeerError, match="larger than 2000 bytes"):
        await erp.register(contract())


async def test_health_up(peer: ErpPeer) -> None:
    health = await connector_for(peer.url).health()
    assert health.ok
    assert health.latency_ms is not None


async def test_timed_out_but_registered_redelivery_is_a_duplicate(peer: ErpPeer) -> None:
    """The ERP finishes a registration whose answer came too late: the redelivered
    command gets the first receipt back, and the ERP holds one registration."""
    peer.state.delay_s = 0.6
    erp = connector_for(peer.url, timeout_s=0.2, retry_attempts=1)
    with pytest.raises(TransientPeerError):
        await erp.register(contract())
    peer.state.delay_s = 0.0
    for _ in range(200):  # the late registration lands in the ERP (bounded wait on the row)
        if peer.ledger.count() == 1:
            break
        await asyncio.sleep(0.05)
    assert peer.ledger.count() == 1
    # the redelivery has time to be answered: its own timeout is not what is tested here
    redelivered = await connector_for(peer.url, timeout_s=10, retry_attempts=1).register(
        contract())
    assert redelivered.duplicate
    assert peer.ledger.count() == 1


class RecordingEmitter:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, object]] = []

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]:
        self.emitted.append((topic.name, payload))
        return cause.caused(payload, producer="test")


def envelope_of(request: ErpRegistrationRequested) -> Envelope[Any]:
    return new_envelope(request, correlation_id="R8-001", procuring_entity="saitama-pref",
                        producer="test")


async def test_effect_emits_registered_or_rejected_and_raises_holds(peer: ErpPeer) -> None:
    [register] = effects(connector_for(peer.url)).values()
    ctx = RecordingEmitter()
    await register(ctx, envelope_of(payment(1_000, number="R8-404")))
    await register(ctx, envelope_of(contract()))
    await register(ctx, envelope_of(contract()))
    (_, rejected), (_, first), (_, again) = ctx.emitted
    assert {topic for topic, _ in ctx.emitted} == {Topics.ERP_EVENTS.name}
    assert isinstance(rejected, ErpRegistrationRejected)
    assert rejected.violations[0].rule_id == "INV-3"
    assert isinstance(first, ErpRegistered)
    assert isinstance(again, ErpRegistered)
    assert again.duplicate
    assert again.erp_reference == first.erp_reference
    peer.state.maintenance_until = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(PeerInMaintenance):
        await register(ctx, envelope_of(advance(1_000)))
    assert len(ctx.emitted) == 3


async def test_breaker_opens_on_outage_and_closes_after_a_good_trial() -> None:
    port = free_port()
    erp = connector_for(f"http://127.0.0.1:{port}/", retry_attempts=1, breaker_failures=2,
                        breaker_reset_s=0.3)
    for _ in range(2):
        with pytest.raises(TransientPeerError):
            await erp.register(contract())
    with pytest.raises(CircuitOpenError):
        await erp.register(contract())
    assert (await erp.health()).state is HealthState.CIRCUIT_OPEN
    assert erp.guard.stats.attempts == 2  # the refused call never went out
    with ErpPeer(port=port):
        await asyncio.sleep(0.35)
        assert erp.guard.breaker.state is BreakerState.HALF_OPEN
        assert not (await erp.register(contract())).duplicate
        assert erp.guard.breaker.state is BreakerState.CLOSED
