"""Connectors as operators see them: health in /readyz, breaker and windows in /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connectors._shared import Guard, MaintenanceCalendar, TransientPeerError
from connectors._shared.policy import CircuitBreaker, RetryPolicy
from connectors._shared.windows import FixedWindow
from connectors.dsure import DSureConnector
from connectors.dsure.httpkit import classify_httpx
from connectors.dsure.settings import DSureSettings
from hub.connector_watch import ConnectorWatch
from hub.http import build_http_app
from tests.support.hubproc import free_port


def _samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _dsure(calendar: MaintenanceCalendar | None = None) -> DSureConnector:
    """The real D・Sure connector, aimed at a loopback port where nothing listens."""
    settings = DSureSettings(base_url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    connector = DSureConnector(settings)
    if calendar is not None:
        connector.guard = Guard("dsure", policy=RetryPolicy(attempts=1),
                                breaker=CircuitBreaker(2, 60), calendar=calendar, timeout_s=2,
                                classify=classify_httpx)
    return connector


async def _readyz(watch: ConnectorWatch) -> dict[str, Any]:
    async def ready() -> dict[str, dict[str, Any]]:
        return {"database": {"ok": True}}

    app = build_http_app(ready, connectors=watch.health)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://hub") as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, "a peer down must not make the hub unready"
    body: dict[str, Any] = response.json()
    assert body["ready"] is True
    return body


async def test_readyz_shows_each_connectors_health_without_gating_readiness() -> None:
    down = _dsure()
    now = datetime.now(UTC)
    closed = _dsure(MaintenanceCalendar([FixedWindow(now - timedelta(minutes=5),
                                                     now + timedelta(hours=1), "upgrade")]))
    watch = ConnectorWatch({"connector.dsure": down, "connector.dsure-b": closed})
    try:
        body = await _readyz(watch)
    finally:
        watch.close()
        await down.aclose()
        await closed.aclose()
    dsure = body["connectors"]["connector.dsure"]
    assert dsure["ok"] is False
    assert dsure["state"] == "down"
    assert dsure["circuit"] == "closed"
    assert dsure["stats"]["calls"] == 0
    assert body["connectors"]["connector.dsure-b"]["state"] == "maintenance"
    assert "upgrade" in body["connectors"]["connector.dsure-b"]["detail"]


async def test_breaker_state_maintenance_and_guard_counters_are_metrics() -> None:
    now = datetime.now(UTC)
    end = now + timedelta(hours=1)
    in_window = _dsure(MaintenanceCalendar([FixedWindow(now - timedelta(minutes=5), end)]))
    failing = _dsure(MaintenanceCalendar())
    watch = ConnectorWatch({"connector.w": in_window, "connector.f": failing})
    try:
        for _ in range(2):  # two transient failures open a breaker of threshold 2
            with pytest.raises(TransientPeerError):
                await failing.guard.call(failing.adapter.ping, what="ping")
        state = _samples("hub_connector_circuit_state")
        assert state[(("connector", "connector.f"), ("state", "open"))] == 1.0
        assert state[(("connector", "connector.f"), ("state", "closed"))] == 0.0
        assert state[(("connector", "connector.w"), ("state", "closed"))] == 1.0
        assert _samples("hub_connector_circuit_opened_total")[
            (("connector", "connector.f"),)] == 1.0
        assert _samples("hub_connector_transient_failures_total")[
            (("connector", "connector.f"),)] == 2.0
        window = _samples("hub_connector_maintenance")
        assert window[(("connector", "connector.w"),)] == 1.0
        assert window[(("connector", "connector.f"),)] == 0.0
        ends = _samples("hub_connector_maintenance_end_timestamp_seconds")
        assert abs(ends[(("connector", "connector.w"),)] - end.timestamp()) < 1
        assert (("connector", "connector.f"),) not in ends
        body = await _readyz(watch)
        assert body["connectors"]["connector.f"]["state"] == "circuit-open"
    finally:
        watch.close()
        await in_window.aclose()
        await failing.aclose()
    assert (("connector", "connector.f"), ("state", "open")) not in _samples(
        "hub_connector_circuit_state"), "a closed watch still reports"


def test_the_default_wiring_hands_its_connectors_to_the_hub(tmp_path: Any) -> None:
    from hub.bootstrap import Wiring, connector_consumers
    from hub.db import create_db_engine

    wiring = Wiring(engine=create_db_engine(f"sqlite:///{tmp_path / 'hub.db'}"))
    connectors = connector_consumers(wiring)
    assert set(wiring.connectors) == {"connector.mail", "connector.erp", "connector.dsure",
                                      "connector.application", "connector.cloudsign"}
    assert wiring.connectors == connectors
    assert all(hasattr(c, "health") and hasattr(c, "guard") for c in connectors.values())


async def test_the_hub_serves_its_connectors_health_at_readyz(tmp_path: Any) -> None:
    from hub.runtime import Hub
    from hub.settings import Settings

    dsure = _dsure()
    hub = Hub(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}"), [],  # type: ignore[arg-type]
              serve_http=False, connectors={"connector.dsure": dsure})
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.http),
                                     base_url="http://hub") as client:
            body = (await client.get("/readyz")).json()
    finally:
        hub.connectors.close()
        await dsure.aclose()
    assert body["connectors"]["connector.dsure"]["state"] == "down"
    assert "outbox_relay" in body["checks"]  # not started here: the hub's own checks still rule
