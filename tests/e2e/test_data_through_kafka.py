"""Sensitive data and crafted ids through the real Kafka broker, the hub in this process.

- The 認証キー of a surety check is not in the raw Kafka record, nor in its dead letter,
  nor in what ``hub dlq show`` prints; the replayed check still fetches the certificate
  from the reference D・Sure with the right key (DAT-3).
- A ``ContractCaseOpened`` whose case id is ``../..`` is dead-lettered by the contract
  consumer, naming the field (DAT-1).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.dsure import DSureConnector, DSureSettings
from connectors.dsure.effects import effects
from connectors.dsure.peer import DSurePeer, seed_certificate
from hub.consumers import ConsumerSpec
from hub.contract import wiring as contract
from hub.dlq import read_dead_letters, replay
from hub.runtime import Hub
from schemas.contract import ContractCaseOpened, ContractParty
from schemas.envelope import new_envelope
from schemas.surety import (
    SuretyCertificateFetched,
    SuretyCheckRequested,
    SuretyKeySource,
    SuretyLookupRefused,
)
from schemas.topics import KeyKind, TopicSpec
from schemas.wire import encode
from tests.support.hubproc import settings_for, wait_for
from tests.support.kafka import create_topics, publish, publish_raw, read_all

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

TOKEN = "hub-test-token"


@pytest.fixture
def peer() -> Iterator[DSurePeer]:
    server = DSurePeer(token=TOKEN)
    server.start()
    yield server
    server.stop()


class RecordingDSure(DSureConnector):
    """The real connector; what each check came back with is kept for the test."""

    answers: list[SuretyCertificateFetched | SuretyLookupRefused]

    async def check(self, command: SuretyCheckRequested
                    ) -> SuretyCertificateFetched | SuretyLookupRefused:
        answer = await super().check(command)
        self.answers.append(answer)
        return answer


@pytest.fixture
async def dsure(peer: DSurePeer) -> AsyncIterator[RecordingDSure]:
    conn = RecordingDSure(DSureSettings(
        base_url=peer.url, api_token=TOKEN, timeout_s=0.5, retry_attempts=1,  # type: ignore[arg-type]
        retry_base_s=0.01, retry_max_s=0.02, breaker_failures=50))
    conn.answers = []
    yield conn
    await conn.aclose()


async def test_the_auth_key_is_never_in_clear_on_kafka_and_still_reaches_dsure(
        kafka_bootstrap: str, pg_url: str, pg_engine: Any, unique: str, peer: DSurePeer,
        dsure: RecordingDSure) -> None:
    topic = TopicSpec(f"t{unique}.surety.commands", "surety checks", KeyKind.CASE, partitions=1)
    await create_topics(kafka_bootstrap, [topic])
    hub = Hub(settings_for(kafka_bootstrap, pg_url, unique),
              [ConsumerSpec("connector.dsure", (topic,), handlers=effects(dsure))],
              engine=pg_engine)
    issued = peer.issue(seed_certificate())
    key = issued.auth_key
    env = new_envelope(SuretyCheckRequested(
        contract_number=issued.certificate.contract_number, auth_key=key,
        source=SuretyKeySource.APPLICATION), correlation_id="R8-001",
        procuring_entity="ashikaga-city", producer="connector.application")
    peer.stop()  # D・Sure is down: the check is retried, then dead-lettered
    await hub.start()
    try:
        await publish(kafka_bootstrap, topic.name, [env])
        letters: list[Any] = []

        async def dead() -> bool:
            letters[:] = await read_dead_letters(hub.settings, [topic.dlq], timeout_s=1)
            return len(letters) == 1

        await wait_for(dead, what="the check dead-lettered")
        (raw,) = await read_all(kafka_bootstrap, topic.name, expect=1)
        (raw_dead,) = await read_all(kafka_bootstrap, topic.dlq, expect=1)
        for record in (raw, raw_dead):
            assert key.encode() not in record.value
            assert b"sealed:v1:" in record.value
            assert all(key.encode() not in value for _, value in record.headers)
        shown = json.dumps(letters[0].details(), ensure_ascii=False)
        assert key not in shown
        assert '"auth_key": "[redacted]"' in json.loads(shown)["value"]

        peer.start()
        assert await replay(hub.settings, letters) == 1
        await wait_for(lambda: len(dsure.answers) == 1, what="the replayed check answered")
        (answer,) = dsure.answers
        assert isinstance(answer, SuretyCertificateFetched)  # the right key: not refused
        assert answer.certificate == issued.certificate
    finally:
        await hub.stop()


async def test_a_case_id_climbing_out_is_dead_lettered_at_the_door(
        kafka_bootstrap: str, pg_url: str, pg_engine: Any, unique: str) -> None:
    """The case never opens, so no later step (the city's signature, written to the mail
    directory under the case id) ever sees the id."""
    topic = TopicSpec(f"t{unique}.contract.commands", "contract commands", KeyKind.CASE,
                      partitions=1)
    await create_topics(kafka_bootstrap, [topic])
    (spec,) = contract.consumers()
    spec = dataclasses.replace(spec, topics=(topic,))
    hub = Hub(settings_for(kafka_bootstrap, pg_url, unique), [spec], engine=pg_engine)
    opened = ContractCaseOpened(
        case_id="R8-001", subject="市道改良工事", amount_yen=1_000_000,
        contractor_network="tokyo", contractor_user_id="U1", contractor_name="〇〇建設",
        city_name="例市", city_officer=ContractParty(name="契約 太郎",
                                                    email="keiyaku@city.example.jp"),
        opened_at=datetime.now(UTC))
    key, value, headers = encode(new_envelope(opened, correlation_id="R8-001",
                                              procuring_entity="city", producer="edge"))
    crafted = value.replace(b'"case_id":"R8-001"', b'"case_id":"../../../../tmp/escaped"')
    await hub.start()
    try:
        await publish_raw(kafka_bootstrap, topic.name, [(key, crafted, headers)])
        letters: list[Any] = []

        async def dead() -> bool:
            letters[:] = await read_dead_letters(hub.settings, [topic.dlq], timeout_s=1)
            return len(letters) == 1

        await wait_for(dead, what="the crafted case dead-lettered")
        (letter,) = letters
        assert letter.context("reason") == "invalid"
        assert letter.context("consumer") == "contract"
        assert "payload.case_id" in letter.context("error-message")
        assert letter.context("text-en")
        assert (await hub.readiness())["consumer:contract"]["ok"]
    finally:
        await hub.stop()
