"""The secured broker (``deploy/kafka.sh --secure``): SASL_SSL with SCRAM-SHA-512, and ACLs
that let each principal write only the topics it owns (deploy/kafka/acls.txt). A plain
client, a client without SASL and a wrong password are refused; an edge cannot write the
hub's contract commands nor read its events; the hub itself runs over SASL_SSL end to end."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from hub.settings import KafkaSettings
from hub.topics import apply_topics
from schemas.envelope import new_envelope
from schemas.topics import Topics
from schemas.wire import decode, encode
from tests.support import ledger
from tests.support.hubproc import ROOT, HubProcess, wait_for
from tests.support.kafka import publish, read_all
from tests.support.ledger import LedgerEntryRequested
from tests.support.securekafka import SECURE_BOOTSTRAP, SECURE_DIR, SecureKafka

pytestmark = [pytest.mark.kafka, pytest.mark.kafka_secure]

REFUSAL_S = 30  # a refused client gives up at once; this only bounds a hang


@pytest.fixture(scope="module")
def secure() -> SecureKafka:
    """The secured broker with the hub's topics applied by `hub topics apply` as the hub."""
    host, _, port = SECURE_BOOTSTRAP.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        pytest.fail(f"no secured Kafka broker at {SECURE_BOOTSTRAP}: start it with "
                    "`bash deploy/kafka.sh --secure start` (deploy/test.sh does this)")
    kafka = SecureKafka(SECURE_BOOTSTRAP, SECURE_DIR)
    done = subprocess.run([sys.executable, "-m", "hub.cli", "topics", "apply"], cwd=ROOT,
                          env={**_base_env(), **kafka.hub_env(),
                               "HUB_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert kafka.password("hub") not in done.stdout + done.stderr
    return kafka


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUB_KAFKA__")}


async def _start(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.start(), REFUSAL_S)
    finally:
        await producer.stop()


def command(n: int = 1) -> Any:
    return new_envelope(LedgerEntryRequested(entry_no=n, amount=n), correlation_id=f"case-{n}",
                        procuring_entity="saitama-pref", producer="test")


async def test_a_plaintext_client_cannot_connect(secure: SecureKafka) -> None:
    with pytest.raises(KafkaConnectionError):
        await _start(AIOKafkaProducer(bootstrap_servers=secure.bootstrap,
                                      request_timeout_ms=5000))


async def test_tls_without_sasl_and_an_untrusted_certificate_are_refused(
        secure: SecureKafka) -> None:
    tls_only = KafkaSettings(bootstrap_servers=secure.bootstrap, security_protocol="SSL",
                             ssl_cafile=secure.cafile)
    with pytest.raises(KafkaConnectionError):
        await _start(AIOKafkaProducer(**tls_only.aiokafka_kwargs(), request_timeout_ms=5000))
    # Without the broker's CA (the system's CAs): the client refuses the broker.
    untrusted = secure.settings("hub").model_copy(update={"ssl_cafile": None})
    with pytest.raises(KafkaConnectionError):
        await _start(AIOKafkaProducer(**untrusted.aiokafka_kwargs(), request_timeout_ms=5000))


async def test_a_wrong_password_is_refused_and_never_logged(
        secure: SecureKafka, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "not-the-password-" + secure.password("hub")[:4]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaConnectionError):
        await _start(AIOKafkaProducer(**secure.settings("hub", wrong).aiokafka_kwargs(),
                                      request_timeout_ms=5000))
    assert "invalid credentials" in caplog.text  # refused by SCRAM, not a network failure
    assert wrong not in caplog.text
    assert repr(secure.settings("hub", wrong)).count(wrong) == 0


async def test_an_edge_cannot_write_the_contract_commands_nor_read_events(
        secure: SecureKafka) -> None:
    # The online application system's principal may write its forms only: a contract
    # command from it (an 電子契約利用申出書 straight onto the hub's topic) is refused.
    producer = AIOKafkaProducer(**secure.settings("application-edge").aiokafka_kwargs(),
                                acks="all", enable_idempotence=True)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(Topics.CONTRACT_COMMANDS.name, b"{}", key=b"case-1")
    finally:
        await producer.stop()
    # Nor may it read the hub's topics: the broker does not even describe them to it
    # (reading needs Read, which implies Describe).
    admin = AIOKafkaAdminClient(**secure.settings("application-edge").aiokafka_kwargs())
    await admin.start()
    try:
        described = await admin.describe_topics([Topics.CONTRACT_EVENTS.name,
                                                 Topics.APPLICATION_EVENTS.name])
    finally:
        await admin.close()
    codes = {t["topic"]: t["error_code"] for t in described}
    assert codes == {Topics.CONTRACT_EVENTS.name: TopicAuthorizationFailedError.errno,
                     Topics.APPLICATION_EVENTS.name: 0}


@pytest.mark.parametrize(("principal", "topic"), [
    ("application-edge", Topics.APPLICATION_EVENTS),
    ("backoffice", Topics.CONTRACT_COMMANDS),
    ("backoffice", Topics.CASE_EVENTS),
])
async def test_an_edge_writes_the_topics_it_owns(secure: SecureKafka, principal: str,
                                                 topic: Any, unique: str) -> None:
    sent = command()
    await publish(secure.bootstrap, topic.name, [sent],
                  **secure.settings(principal).aiokafka_kwargs())
    # The hub reads it (the hub's principal reads every proc.* topic).
    records = await read_all(secure.bootstrap, topic.name,
                             **secure.settings("hub").aiokafka_kwargs())
    assert encode(sent)[1] in {r.value for r in records}


@pytest.mark.postgres
@pytest.mark.e2e
async def test_the_hub_runs_over_sasl_ssl_end_to_end(secure: SecureKafka, db_url: str,
                                                     engine: Any, unique: str,
                                                     tmp_path: Path) -> None:
    """A `hub run` process with SASL_SSL settings: consumer group, outbox relay (idempotent
    producer), every effect once; its password is in no log line."""
    prefix = f"proc.t{unique}.ledger"  # proc.*: the hub's principal owns them
    t_in, t_out = ledger.topics(prefix)
    hub_kafka = secure.settings("hub")
    await apply_topics(hub_kafka, [t_in, t_out])
    ledger.create_tables(engine)
    n = 300
    await publish(secure.bootstrap, t_in.name, [command(i) for i in range(n)],
                  **hub_kafka.aiokafka_kwargs())
    hub = HubProcess(secure.bootstrap, db_url, f"hub.t{unique}", prefix, tmp_path / "hub.log",
                     env={**secure.hub_env(), "HUB_LOG_LEVEL": "DEBUG"})
    hub.start()
    try:
        await wait_for(lambda: len(ledger.entry_counts(engine)) == n, timeout_s=120,
                       what=f"{n} entries booked over SASL_SSL")
        records = await read_all(secure.bootstrap, t_out.name, expect=n, timeout_s=60,
                                 **hub_kafka.aiokafka_kwargs())
    finally:
        code = hub.terminate()
    assert code == 0
    assert ledger.entry_counts(engine) == dict.fromkeys(range(n), 1)
    assert {decode(r.value, r.headers).payload.entry_no for r in records} == set(range(n))
    assert secure.password("hub") not in hub.log_path.read_text(errors="replace")
