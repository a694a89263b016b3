"""The delivery guarantees through the real Kafka broker, with the hub in this process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.dlq import read_dead_letters, replay
from hub.runtime import Hub
from schemas.envelope import new_envelope
from schemas.wire import decode
from tests.support import ledger
from tests.support.hubproc import ROOT, settings_for, wait_for
from tests.support.kafka import committed_count, create_topics, publish, publish_raw, read_all
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]


def entry(n: int, **kw: Any) -> Any:
    return new_envelope(LedgerEntryRequested(entry_no=n, amount=n, **kw),
                        correlation_id=f"case-{n % 17}", procuring_entity="saitama-pref",
                        producer="test")


@pytest.fixture
async def running(kafka_bootstrap: str, db_url: str, engine: Any, unique: str) -> Any:
    prefix = f"t{unique}.ledger"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    settings = settings_for(kafka_bootstrap, db_url, unique)
    hub = Hub(settings, [ledger.consumer(prefix)], engine=engine)
    await hub.start()
    try:
        yield hub, t_in, t_out
    finally:
        await hub.stop()


async def test_each_message_has_one_effect_even_when_delivered_twice(
        running: Any, kafka_bootstrap: str, engine: Any) -> None:
    _hub, t_in, t_out = running
    envs = [entry(n) for n in range(300)]
    await publish(kafka_bootstrap, t_in.name, envs)
    await publish(kafka_bootstrap, t_in.name, envs[:100])  # the sender retried
    await wait_for(lambda: len(ledger.entry_counts(engine)) == 300, what="300 entries")
    out = await read_all(kafka_bootstrap, t_out.name, expect=300)
    assert ledger.entry_counts(engine) == dict.fromkeys(range(300), 1)
    events = [decode(r.value, r.headers) for r in out]
    assert sorted(e.payload.entry_no for e in events) == list(range(300))
    by_cause = {e.causation_id for e in events}
    assert by_cause == {e.message_id for e in envs}
    # One case stays on one partition: every event of case-3 shares a partition.
    assert len({r.partition for r, e in zip(out, events, strict=True)
                if e.correlation_id == "case-3"}) == 1


async def test_poison_goes_to_the_dead_letter_topic_and_the_rest_flows(
        running: Any, kafka_bootstrap: str, engine: Any) -> None:
    hub, t_in, _ = running
    await publish(kafka_bootstrap, t_in.name, [entry(n) for n in range(50)])
    await publish_raw(kafka_bootstrap, t_in.name, [
        (b"k1", b"<xml>not json</xml>", []),
        (b"k2", b'{"type": "test.ledger.entry-requested", "schema_version": 9}', []),
        (b"k3", b"[]", [("content-type", b"\xff\xfe")]),
    ])
    await publish(kafka_bootstrap, t_in.name, [entry(n) for n in range(50, 100)])
    await wait_for(lambda: len(ledger.entry_counts(engine)) == 100, what="100 entries")
    letters = await read_dead_letters(hub.settings, [t_in.dlq])
    assert sorted(d.context("reason") for d in letters) == ["not-envelope", "not-json",
                                                            "unknown-type"]
    assert all(d.context("original-topic") == t_in.name for d in letters)
    assert (await hub.readiness())["consumer:ledger"]["ok"]


async def test_dead_letter_replayed_after_the_fix_is_processed_once(
        running: Any, kafka_bootstrap: str, engine: Any, tmp_path: Path) -> None:
    hub, t_in, _ = running
    broken = tmp_path / "peer-down"
    broken.touch()
    await publish(kafka_bootstrap, t_in.name,
                  [entry(1, fail_flag=str(broken)), entry(2), entry(3, fail_flag=str(broken))])
    letters: list[Any] = []

    async def two_dead() -> bool:
        letters[:] = await read_dead_letters(hub.settings, [t_in.dlq], timeout_s=1)
        return len(letters) == 2

    await wait_for(two_dead, what="two dead letters after the retries")
    assert {d.context("reason") for d in letters} == {"retries-exhausted"}
    assert {d.context("attempts") for d in letters} == {"3"}
    assert ledger.entry_counts(engine) == {2: 1}
    broken.unlink()  # the fix
    await replay(hub.settings, letters)
    await replay(hub.settings, letters)  # an operator replays twice by mistake
    await wait_for(lambda: len(ledger.entry_counts(engine)) == 3, what="replayed entries")
    await publish(kafka_bootstrap, t_in.name, [entry(4)])  # a marker behind the replays
    await wait_for(lambda: 4 in ledger.entry_counts(engine), what="the marker")
    assert ledger.entry_counts(engine) == {1: 1, 2: 1, 3: 1, 4: 1}


async def test_stopping_while_offsets_are_on_their_way_commits_them_first(
        kafka_bootstrap: str, db_url: str, engine: Any, unique: str) -> None:
    """SIGTERM just after a batch: its offsets are committed before the consumer closes.
    aiokafka never ends a commit that is in flight while its consumer stops; the hub then
    ignored SIGTERM (the registration benchmark's hub, about one run in fifteen)."""
    prefix = f"t{unique}.stopping"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    hub = Hub(settings_for(kafka_bootstrap, db_url, unique), [ledger.consumer(prefix)],
              engine=engine, serve_http=False)
    rt = hub.runtimes[0]
    commit = rt._commit
    under_way: list[int] = []

    async def slow_commit(records: Any) -> None:
        # Each commit takes a second to set off, so that stop() begins while the last one
        # is under way (a window of milliseconds otherwise).
        under_way.append(len(records))
        await asyncio.sleep(1.0)
        await commit(records)

    rt._commit = slow_commit  # type: ignore[method-assign]
    await hub.start()
    await publish(kafka_bootstrap, t_in.name, [entry(n) for n in range(40)])
    await wait_for(lambda: sum(under_way) == 40, what="the last batch's commit under way")
    assert len(ledger.entry_counts(engine)) == 40
    await asyncio.wait_for(hub.stop(), timeout=60)
    assert await committed_count(kafka_bootstrap, rt.group_id, t_in.name) == 40


async def test_health_readiness_and_metrics(running: Any, kafka_bootstrap: str,
                                            engine: Any) -> None:
    hub, t_in, _ = running
    await publish(kafka_bootstrap, t_in.name, [entry(n) for n in range(10)])
    await wait_for(lambda: len(ledger.entry_counts(engine)) == 10, what="10 entries")
    base = f"http://127.0.0.1:{hub.settings.http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        await wait_for(lambda: True)
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == {"ok": True}
        text = (await client.get("/metrics")).text
    for name in ("hub_messages_consumed_total", "hub_messages_processed_total",
                 "hub_handler_latency_seconds_bucket", "hub_consumer_lag",
                 "hub_outbox_published_total"):
        assert name in text, name
    assert 'hub_messages_processed_total{consumer="ledger",outcome="done"}' in text


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_an_idle_keep_alive_connection_outlives_the_clients_pool(running: Any) -> None:
    # A client (httpx keeps idle connections 5 s) must never send on a connection the hub
    # is closing at the same moment: the card agent PUTs its signed PDF after a long
    # signature. One connection, idle past uvicorn's 5 s default, still answers.
    hub, _, _ = running
    base = f"http://127.0.0.1:{hub.settings.http_port}"
    async with httpx.AsyncClient(base_url=base) as client:  # the server is up
        await wait_for(lambda: _answers(client), what="the hub's HTTP server")
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.settings.http_port)
    request = b"GET /healthz HTTP/1.1\r\nHost: hub\r\nConnection: keep-alive\r\n\r\n"
    try:
        for _ in range(2):
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            await asyncio.sleep(6)
    finally:
        writer.close()


def test_cli_lists_shows_and_replays_dead_letters(kafka_bootstrap: str, unique: str) -> None:
    import asyncio
    import json

    spec = ledger.topics(f"t{unique}.cli")[0]
    asyncio.run(create_topics(kafka_bootstrap, [spec]))
    asyncio.run(publish_raw(kafka_bootstrap, spec.dlq, [(b"k", b"{}", [
        ("x-dlq-original-topic", spec.name.encode()), ("x-dlq-reason", b"not-envelope"),
        ("x-dlq-original-offset", b"7"), ("x-dlq-original-partition", b"0"),
        ("x-dlq-text-en", b"The canonical envelope is missing.")])]))
    env = {**os.environ, "HUB_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
           "PYTHONPATH": str(ROOT)}

    def hub(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "hub.cli", "dlq", *args], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    listed = hub("list", "--topic", spec.name)
    assert [(d["reason"], d["original"]) for d in listed] == [
        ("not-envelope", f"{spec.name}/0/7")]
    ref = listed[0]["ref"]
    shown = hub("show", "--topic", spec.dlq, ref)
    assert shown[0]["text_en"] == "The canonical envelope is missing."
    assert hub("replay", "--topic", spec.name, ref) == {"replayed": 1, "refs": [ref]}
    back = asyncio.run(read_all(kafka_bootstrap, spec.name, expect=1))
    assert [(r.value, dict(r.headers).get("x-hub-replay-of")) for r in back] == [
        (b"{}", ref.encode())]
    assert not any(k.startswith("x-dlq-") for k, _ in back[0].headers)
