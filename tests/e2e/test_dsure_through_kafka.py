"""A D・Sure surety check through real Kafka, the hub and the reference D・Sure (SUR-2, WIN-2).

The whole path an operator sees: with D・Sure down, the check is retried, then
lands in the dead-letter topic with the reason and the attempts; once D・Sure is
back, ``hub dlq replay`` (its function) yields the certificate on
``proc.surety.events``, once. A check sent while D・Sure announces maintenance is
held and answered after the window, never dead-lettered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.effects import effects
from connectors.dsure.peer import DSurePeer, IssuedCertificate, seed_certificate
from hub.consumers import ConsumerSpec
from hub.dlq import read_dead_letters, replay
from hub.runtime import Hub
from schemas.envelope import new_envelope
from schemas.surety import SuretyCheckRequested, SuretyKeySource
from schemas.topics import KeyKind, Topics, TopicSpec
from schemas.wire import decode
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, publish, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]

TOKEN = "e2e-dsure-token"


@pytest.fixture
def peer() -> Iterator[DSurePeer]:
    server = DSurePeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def running(kafka_bootstrap: str, db_url: str, engine: Any, unique: str,
                  peer: DSurePeer) -> AsyncIterator[tuple[Hub, TopicSpec]]:
    # A topic of this test's own for the commands, so no other consumer reads them.
    commands = TopicSpec(f"t{unique}.surety.commands", "test", KeyKind.CASE, partitions=2)
    await create_topics(kafka_bootstrap, [commands, Topics.SURETY_EVENTS])
    connector = DSureConnector(DSureSettings(
        base_url=peer.url, api_token=TOKEN, timeout_s=0.5, retry_attempts=2,  # type: ignore[arg-type]
        retry_base_s=0.01, retry_max_s=0.02, breaker_failures=100))
    spec = ConsumerSpec("connector.dsure", (commands,), handlers=effects(connector))
    hub = Hub(settings_for(kafka_bootstrap, db_url, unique), [spec], engine=engine)
    await hub.start()
    try:
        yield hub, commands
    finally:
        await hub.stop()
        await connector.aclose()


def check(issued: IssuedCertificate, case: str) -> Any:
    return new_envelope(
        SuretyCheckRequested(contract_number=issued.certificate.contract_number,
                             auth_key=issued.auth_key, source=SuretyKeySource.APPLICATION),
        correlation_id=case, procuring_entity="ashikaga-city", producer="test")


async def answers_to(bootstrap: str, cause: Any) -> list[Any]:
    records = await read_all(bootstrap, Topics.SURETY_EVENTS.name)
    events = [decode(r.value, r.headers) for r in records]
    return [e for e in events if e.causation_id == cause.message_id]


async def test_outage_dead_letter_replay_and_maintenance_hold(
        running: tuple[Hub, TopicSpec], peer: DSurePeer, kafka_bootstrap: str,
        unique: str) -> None:
    hub, commands = running
    issued = peer.issue(seed_certificate())
    peer.stop()
    lost = check(issued, f"case-{unique}-1")
    await publish(kafka_bootstrap, commands.name, [lost])
    letters: list[Any] = []

    async def dead() -> bool:
        letters[:] = await read_dead_letters(hub.settings, [commands.dlq], timeout_s=1)
        return len(letters) == 1

    await wait_for(dead, what="the check in the dead-letter topic")
    (letter,) = letters
    assert letter.context("reason") == "retries-exhausted"
    assert letter.context("attempts") == "3"
    assert "network" in letter.context("error-message")
    assert issued.auth_key not in letter.context("error-message")

    peer.start()  # D・Sure is back
    await replay(hub.settings, letters)

    async def answered(env: Any) -> bool:
        return len(await answers_to(kafka_bootstrap, env)) == 1

    await wait_for(lambda: answered(lost), what="the certificate after the replay")
    (fetched,) = await answers_to(kafka_bootstrap, lost)
    assert fetched.payload.certificate == issued.certificate
    assert fetched.correlation_id == f"case-{unique}-1"

    peer.faults.maintenance_until = datetime.now(UTC) + timedelta(seconds=3)
    held = check(issued, f"case-{unique}-2")
    await publish(kafka_bootstrap, commands.name, [held])
    await wait_for(lambda: answered(held), timeout_s=30, what="the held check after the window")
    assert peer.faults.maintenance_until is not None
    assert datetime.now(UTC) >= peer.faults.maintenance_until
    assert len(await read_dead_letters(hub.settings, [commands.dlq], timeout_s=1)) == 1
