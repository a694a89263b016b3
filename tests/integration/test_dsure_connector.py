"""The D・Sure connector against the reference D・Sure on loopback (SUR-1, SUR-2, WIN-2).

Faults: peer down, slow past the timeout, answering garbage, inside a maintenance
window. Each shows the retries, the transient error the hub dead-letters (with
its reason and attempt history), and the same command succeeding once the peer
is back: nothing is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors._shared import PeerInMaintenance, PermanentPeerError, TransientPeerError
from connectors._shared.health import HealthState
from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.peer import (
    LOCAL_ISSUER_TOKEN,
    DSurePeer,
    IssuedCertificate,
    seed_certificate,
)
from schemas.surety import (
    SuretyCertificateFetched,
    SuretyCheckRequested,
    SuretyKeySource,
    SuretyLookupRefused,
)

TOKEN = "test-city-token"


@pytest.fixture
def peer() -> Iterator[DSurePeer]:
    server = DSurePeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def issued(peer: DSurePeer) -> IssuedCertificate:
    return peer.issue(seed_certificate())


def settings_for(peer: DSurePeer, **overrides: object) -> DSureSettings:
    values: dict[str, object] = {
        "base_url": peer.url, "api_token": TOKEN, "timeout_s": 0.5, "retry_attempts": 3,
        "retry_base_s": 0.01, "retry_max_s": 0.02, "breaker_failures": 10,
        "breaker_reset_s": 0.05,
    }
    return DSureSettings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture
async def connector(peer: DSurePeer) -> AsyncIterator[DSureConnector]:
    conn = DSureConnector(settings_for(peer))
    yield conn
    await conn.aclose()


def command(issued: IssuedCertificate, key: str | None = None) -> SuretyCheckRequested:
    return SuretyCheckRequested(contract_number=issued.certificate.contract_number,
                                auth_key=key or issued.auth_key,
                                source=SuretyKeySource.APPLICATION)


async def test_lookup_returns_the_sur2_fields(connector: DSureConnector,
                                              issued: IssuedCertificate) -> None:
    result = await connector.check(command(issued))
    assert isinstance(result, SuretyCertificateFetched)
    assert result.certificate == issued.certificate


async def test_the_uploaded_notice_pdf_opens_the_certificate(connector: DSureConnector,
                                                              issued: IssuedCertificate) -> None:
    notice = connector.read_notice(issued.notice_pdf())
    result = await connector.check(SuretyCheckRequested(
        contract_number=notice.contract_number, auth_key=notice.auth_key,
        source=SuretyKeySource.UPLOAD, expected_product=notice.product))
    assert isinstance(result, SuretyCertificateFetched)
    assert result.certificate.work_name == notice.work_name


async def test_wrong_key_is_refused_with_sur1_without_retrying(
        peer: DSurePeer, connector: DSureConnector, issued: IssuedCertificate) -> None:
    result = await connector.check(command(issued, key="WRONGKEY1234"))
    assert isinstance(result, SuretyLookupRefused)
    assert [v.rule_id for v in result.violations] == ["SUR-1"]
    assert "一致しません" in result.violations[0].message_ja
    assert peer.faults.requests == 1


async def test_unknown_number_is_refused_with_sur1(connector: DSureConnector) -> None:
    result = await connector.check(SuretyCheckRequested(
        contract_number="99999-0000Z", auth_key="ABCDEFGH1234",
        source=SuretyKeySource.MAIL))
    assert isinstance(result, SuretyLookupRefused)
    assert result.violations[0].field == "保証契約番号"


async def test_wrong_city_token_is_permanent_and_does_not_blame_the_contractor(
        peer: DSurePeer, issued: IssuedCertificate) -> None:
    conn = DSureConnector(settings_for(peer, api_token="wrong"))
    try:
        with pytest.raises(PermanentPeerError, match="HUB_DSURE_API_TOKEN") as caught:
            await conn.check(command(issued))
        assert "wrong" not in str(caught.value)
    finally:
        await conn.aclose()


async def test_peer_down_retries_then_dead_letter_reason_then_nothing_lost(
        peer: DSurePeer, connector: DSureConnector, issued: IssuedCertificate) -> None:
    peer.stop()
    with pytest.raises(TransientPeerError) as caught:
        await connector.check(command(issued))
    assert caught.value.attempts == 3
    assert len(caught.value.history) == 3
    assert "network" in caught.value.reason
    assert connector.guard.stats.retries == 2
    peer.start()
    assert isinstance(await connector.check(command(issued)), SuretyCertificateFetched)


async def test_peer_slow_past_the_timeout(peer: DSurePeer, connector: DSureConnector,
                                          issued: IssuedCertificate) -> None:
    peer.faults.slow_s = 0.8
    with pytest.raises(TransientPeerError, match="timeout") as caught:
        await connector.check(command(issued))
    assert caught.value.attempts == 3
    assert peer.faults.requests == 3
    peer.faults.clear()
    assert isinstance(await connector.check(command(issued)), SuretyCertificateFetched)


async def test_peer_answering_garbage(peer: DSurePeer, connector: DSureConnector,
                                      issued: IssuedCertificate) -> None:
    peer.faults.garbage = True
    with pytest.raises(TransientPeerError, match="not JSON") as caught:
        await connector.check(command(issued))
    assert peer.faults.requests == 3
    assert issued.auth_key not in str(caught.value) + " ".join(caught.value.history)
    peer.faults.clear()
    assert isinstance(await connector.check(command(issued)), SuretyCertificateFetched)


async def test_peer_announcing_maintenance_is_a_hold_not_a_failure(
        peer: DSurePeer, connector: DSureConnector, issued: IssuedCertificate) -> None:
    until = datetime.now(UTC) + timedelta(minutes=30)
    peer.faults.maintenance_until = until
    with pytest.raises(PeerInMaintenance) as caught:
        await connector.check(command(issued))
    assert abs((caught.value.retry_at - until).total_seconds()) < 1
    assert peer.faults.requests == 1  # no retry inside the window
    peer.faults.clear()
    assert isinstance(await connector.check(command(issued)), SuretyCertificateFetched)


async def test_configured_window_holds_work_without_calling_the_peer(
        peer: DSurePeer, issued: IssuedCertificate) -> None:
    now = datetime.now(UTC)
    begin, end = now - timedelta(minutes=1), now + timedelta(hours=1)
    window = f"fixed {begin.isoformat()} {end.isoformat()}"
    conn = DSureConnector(settings_for(peer, maintenance=(window,)))
    try:
        with pytest.raises(PeerInMaintenance) as caught:
            await conn.check(command(issued))
        assert caught.value.retry_at > now
        assert peer.faults.requests == 0
        assert (await conn.health()).state is HealthState.MAINTENANCE
    finally:
        await conn.aclose()


async def test_breaker_opens_on_a_failing_peer_and_closes_when_it_recovers(
        peer: DSurePeer, issued: IssuedCertificate) -> None:
    conn = DSureConnector(settings_for(peer, breaker_failures=2, breaker_reset_s=0.2))
    try:
        peer.faults.error_status = 500
        with pytest.raises(TransientPeerError):
            await conn.check(command(issued))
        assert (await conn.health()).state is HealthState.CIRCUIT_OPEN
        assert peer.faults.requests == 2  # the third attempt was refused by the breaker
        peer.faults.clear()
        await asyncio.sleep(0.25)
        assert isinstance(await conn.check(command(issued)), SuretyCertificateFetched)
        assert (await conn.health()).state is HealthState.UP
    finally:
        await conn.aclose()


async def test_health_up_and_down(peer: DSurePeer, connector: DSureConnector) -> None:
    health = await connector.health()
    assert health.state is HealthState.UP
    assert health.latency_ms is not None
    peer.stop()
    assert (await connector.health()).state is HealthState.DOWN


async def test_a_surety_company_publishes_a_certificate_the_city_then_looks_up(
        peer: DSurePeer, connector: DSureConnector) -> None:
    cert = seed_certificate("40001-0042K").model_copy(update={"work_name": "市道１号線舗装工事"})
    body = cert.model_dump_json()
    async with httpx.AsyncClient(base_url=peer.url) as http:
        refused = await http.post("/api/v1/issuer/certificates", content=body,
                                  headers={"Authorization": "Bearer not-the-issuer"})
        assert refused.status_code == 401
        bad = await http.post("/api/v1/issuer/certificates", content=b'{"contract_number": 1}',
                              headers={"Authorization": f"Bearer {LOCAL_ISSUER_TOKEN}"})
        assert bad.status_code == 422
        published = await http.post("/api/v1/issuer/certificates", content=body,
                                    headers={"Authorization": f"Bearer {LOCAL_ISSUER_TOKEN}"})
    assert published.status_code == 201
    answer = published.json()
    assert answer["contract_number"] == "40001-0042K"
    assert len(answer["auth_key"]) == 12
    result = await connector.check(SuretyCheckRequested(
        contract_number="40001-0042K", auth_key=answer["auth_key"],
        source=SuretyKeySource.MAIL))
    assert isinstance(result, SuretyCertificateFetched)
    assert result.certificate == cert
    wrong = await connector.check(SuretyCheckRequested(
        contract_number="40001-0042K", auth_key="x" * 12, source=SuretyKeySource.MAIL))
    assert isinstance(wrong, SuretyLookupRefused)
