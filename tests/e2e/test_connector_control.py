"""The connectors' control API and ``hub connectors`` against a hub in this process, with
real Kafka and PostgreSQL: pause and resume with 1,000 messages in flight (none lost, none
doubled, none handled while paused), status, restart, config validation, and the
administrator check."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from connectors._shared import ConnectorSettings, Guard, Health
from connectors._shared.effects import Effect, Emitter
from connectors._shared.plugin import ConnectorPlugin
from hub.cli import main
from hub.control import mount
from hub.db import create_db_engine
from hub.plugins import ConnectorRegistry
from hub.runtime import Hub
from hub.staff import StaffAuth, token_sha256
from schemas.envelope import Envelope, new_envelope
from schemas.registry import Payload
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, publish
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]

TOKEN = "control-test-token"
TOTAL = 1_000
GATE_AT = 100


class CounterSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_TESTCOUNTER_", extra="ignore", frozen=True)

    api_token: SecretStr = SecretStr("counter-token")


@dataclass
class Ledger:
    """What the connectors handled, in order, and the gate that holds one batch in flight."""

    handled: list[int] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)


class CounterConnector:
    def __init__(self, settings: CounterSettings, ledger: Ledger) -> None:
        self.guard = Guard.from_settings("counter", settings)
        self.ledger = ledger

    async def handle(self, entry_no: int) -> None:
        if len(self.ledger.handled) == GATE_AT and not self.ledger.gate.is_set():
            self.ledger.waiting.set()
            await self.ledger.gate.wait()
        self.ledger.handled.append(entry_no)

    async def health(self) -> Health:
        async def ok() -> str:
            return "ok"

        return await self.guard.probe(ok)


def plugin_for(topic: TopicSpec, ledger: Ledger) -> ConnectorPlugin:
    def effects(connector: CounterConnector) -> dict[type[Payload], Effect]:
        async def count(ctx: Emitter, envelope: Envelope[Any]) -> None:
            await connector.handle(envelope.payload.entry_no)

        return {LedgerEntryRequested: count}

    return ConnectorPlugin(name="counter", description="counts what it handles",
                           settings=CounterSettings, consumes=(topic,),
                           build=lambda settings: CounterConnector(settings, ledger),
                           effects=effects)


@dataclass
class Running:
    hub: Hub
    topic: TopicSpec
    ledger: Ledger
    client: httpx.AsyncClient
    url: str


@pytest.fixture
async def running(kafka_bootstrap: str, pg_url: str, unique: str) -> AsyncIterator[Running]:
    topic = TopicSpec(f"t{unique}.counter", "control test", KeyKind.CASE, partitions=6)
    await create_topics(kafka_bootstrap, [topic])
    ledger = Ledger()
    registry = ConnectorRegistry([plugin_for(topic, ledger)])
    started = registry.start()
    engine = create_db_engine(pg_url)
    settings = settings_for(kafka_bootstrap, pg_url, unique)
    hub = Hub(settings, [c.spec for c in started], engine=engine)
    mount(hub.http, started, lambda: hub.runtimes, StaffAuth([token_sha256(TOKEN)]))
    await hub.start()
    url = f"http://127.0.0.1:{settings.http_port}"
    await wait_for(lambda: hub._server is not None and hub._server.started, what="HTTP up")
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        try:
            yield Running(hub, topic, ledger, client, url)
        finally:
            ledger.gate.set()
            await hub.stop()
            engine.dispose()


def entries(start: int, stop: int) -> list[Any]:
    return [new_envelope(LedgerEntryRequested(entry_no=n, amount=n), correlation_id=f"case-{n}",
                         procuring_entity="saitama-pref", producer="test")
            for n in range(start, stop)]


async def total_lag(client: httpx.AsyncClient) -> int:
    status = (await client.get("/connectors/counter/status")).json()
    return sum(status["lag"].values())


async def test_pause_with_1000_in_flight_loses_doubles_and_handles_nothing(
        running: Running, kafka_bootstrap: str) -> None:
    client, ledger = running.client, running.ledger
    await publish(kafka_bootstrap, running.topic.name, entries(0, TOTAL))
    await asyncio.wait_for(ledger.waiting.wait(), 60)  # a batch is in flight, held
    pausing = asyncio.create_task(client.put("/connectors/counter/pause"))
    await wait_for(lambda: running.hub.runtimes[0].paused, what="pause asked")
    ledger.gate.set()  # the batch in flight ends; pause returns after it
    answer = await pausing
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "PAUSED"
    assert paused_metric(running) == 1.0
    at_pause = len(ledger.handled)
    assert GATE_AT < at_pause < TOTAL
    # Everything not handled waits on the topic: the consumer's position is there, its lag
    # is exactly what is left, and nothing more is handled however long that holds.
    await wait_for(lambda: _lag_is(client, TOTAL - at_pause), what="lag of what is left")
    assert len(ledger.handled) == at_pause
    assert (await client.get("/connectors/counter/status")).json()["state"] == "PAUSED"
    assert len(ledger.handled) == at_pause

    resumed = await client.put("/connectors/counter/resume")
    assert resumed.json()["state"] == "RUNNING"
    assert paused_metric(running) == 0.0
    await wait_for(lambda: len(ledger.handled) >= TOTAL, what="all 1,000 handled")
    await wait_for(lambda: _lag_is(client, 0), what="lag 0")
    assert sorted(ledger.handled) == list(range(TOTAL))  # none lost, none doubled


def paused_metric(running: Running) -> float | None:
    """``hub_consumer_paused`` of the connector's consumer, as /metrics shows it."""
    return REGISTRY.get_sample_value("hub_consumer_paused",
                                     {"consumer": running.hub.runtimes[0].spec.name})


async def _lag_is(client: httpx.AsyncClient, expected: int) -> bool:
    return await total_lag(client) == expected


async def test_list_status_restart_and_validate(running: Running) -> None:
    client = running.client
    listed = (await client.get("/connectors")).json()
    assert [c["name"] for c in listed] == ["counter"]
    assert listed[0]["settings_prefix"] == "HUB_TESTCOUNTER_"
    status = (await client.get("/connectors/counter/status")).json()
    assert status["state"] == "RUNNING"
    assert paused_metric(running) == 0.0
    assert status["circuit"]["state"] == "closed"
    assert status["window"] is None
    assert status["last_error"] is None
    assert status["health"] == {"state": "up", "detail": "ok"}

    before = running.hub.runtimes[0].spec.handlers[LedgerEntryRequested]
    restarted = (await client.post("/connectors/counter/restart")).json()
    assert restarted["restarts"] == 1
    assert restarted["state"] == "RUNNING"
    assert running.hub.runtimes[0].spec.handlers[LedgerEntryRequested] is not before

    bad = (await client.put("/connectors/counter/config/validate",
                            json={"timeout_s": -1, "maintenance": ["someday"],
                                  "api_token": ["s3cr3t-value"]})).json()
    assert bad["valid"] is False
    assert {e["field"] for e in bad["errors"]} == {"timeout_s", "maintenance", "api_token"}
    assert all(e["rule_id"] == "OPS-2" for e in bad["errors"])
    assert "s3cr3t" not in json.dumps(bad)  # a secret is never echoed
    good = (await client.put("/connectors/counter/config/validate",
                             json={"timeout_s": 2, "maintenance": ["weekly sun 00:00-06:00"]}
                             )).json()
    assert good == {"name": "counter", "valid": True, "error_count": 0, "errors": []}

    unknown = await client.get("/connectors/nowhere/status")
    assert unknown.status_code == 404
    assert unknown.json()["detail"]["violations"][0]["rule_id"] == "OPS-1"


async def test_only_an_administrator_steers(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.url) as anonymous:
        for method, path in (("GET", "/connectors"), ("PUT", "/connectors/counter/pause"),
                             ("POST", "/connectors/counter/restart")):
            answer = await anonymous.request(method, path)
            assert answer.status_code == 401, path
        wrong = await anonymous.put("/connectors/counter/pause",
                                    headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
    assert not running.hub.runtimes[0].paused


async def test_the_cli_talks_to_the_api(running: Running, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HUB_STAFF_TOKEN", TOKEN)
    with caplog.at_level(logging.INFO, "hub.control"):
        assert await asyncio.to_thread(main, ["connectors", "pause", "counter", "--url",
                                              running.url]) == 0
    assert "connector counter paused (asked from 127.0.0.1)" in caplog.text
    assert TOKEN not in caplog.text
    assert json.loads(capsys.readouterr().out)["state"] == "PAUSED"
    assert running.hub.runtimes[0].paused
    assert await asyncio.to_thread(main, ["connectors", "resume", "counter", "--url",
                                          running.url]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "RUNNING"
    assert await asyncio.to_thread(main, ["connectors", "list", "--url", running.url]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "counter"
    assert await asyncio.to_thread(main, ["connectors", "status", "nowhere", "--url",
                                          running.url]) == 1
    monkeypatch.setenv("HUB_STAFF_TOKEN", "wrong")
    assert await asyncio.to_thread(main, ["connectors", "list", "--url", running.url]) == 1
