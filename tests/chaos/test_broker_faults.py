"""Brokers of a 3-node KRaft cluster crash under a real `hub run` process (chaos).

Topics as ``hub topics apply`` makes them on three brokers: three replicas,
``min.insync.replicas`` 2, no unclean leader election; producers acks=all, idempotent.
- The leader of a partition SIGKILLed mid-stream of 20,000: nothing lost, nothing doubled.
- Two of three brokers down mid-stream of 20,000: the hub holds its records (Kafka cannot
  acknowledge them), ``/readyz`` says not ready, and once one broker is back everything
  is delivered once.
The figures (stall, time to recover) are printed for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.db import OutboxRecord
from hub.settings import KafkaSettings
from hub.topics import apply_topics
from schemas.envelope import new_envelope
from schemas.wire import decode
from tests.support import ledger
from tests.support.cluster import Cluster, start_cluster
from tests.support.hubproc import HubProcess, wait_for
from tests.support.kafka import publish, read_all, topic_configs
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


def entries(start: int, stop: int) -> list[Any]:
    return [new_envelope(LedgerEntryRequested(entry_no=n, amount=n),
                         correlation_id=f"case-{n % 101}", procuring_entity="saitama-pref",
                         producer="test") for n in range(start, stop)]


def outbox_size(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(
            OutboxRecord.__table__)).scalar() or 0)


class Progress:
    """Samples the booked entries every 0.2 s: the longest time without progress."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Progress:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _run(self) -> None:
        while True:
            count = await asyncio.to_thread(lambda: len(ledger.entry_counts(self.engine)))
            self.samples.append((time.monotonic(), count))
            await asyncio.sleep(0.2)

    def longest_stall_after(self, since: float, until_count: int) -> float:
        stall, last_t, last_n = 0.0, since, -1
        for t, n in self.samples:
            if t < since:
                last_n = n
                continue
            if n != last_n:
                stall = max(stall, t - last_t)
                last_t, last_n = t, n
            if n >= until_count:
                break
        return stall


async def assert_each_effect_once(engine: Any, bootstrap: str, out_topic: str,
                                  n: int) -> dict[str, int]:
    await wait_for(lambda: len(ledger.entry_counts(engine)) == n, timeout_s=300,
                   what=f"{n} entries booked")
    await wait_for(lambda: outbox_size(engine) == 0, timeout_s=120, what="outbox drained")
    counts = ledger.entry_counts(engine)
    doubled = {k: v for k, v in counts.items() if v != 1}
    assert not doubled, f"effects doubled: {list(doubled.items())[:10]}"
    assert set(counts) == set(range(n))
    records = await read_all(bootstrap, out_topic, timeout_s=180)
    copies = Counter(decode(r.value, r.headers).payload.entry_no for r in records)
    assert set(copies) == set(range(n)), f"{n - len(copies)} events missing"
    return {"lost": n - len(counts), "doubled_effects": len(doubled),
            "events_on_topic_twice": sum(1 for c in copies.values() if c > 1)}


async def ready(port: int) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/readyz")
        return answer.status_code, answer.json()


async def readiness_is(port: int, status: int) -> bool:
    try:
        return (await ready(port))[0] == status
    except httpx.HTTPError:
        return False


@pytest.fixture
def procs() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for p in started:
        p.ensure_stopped()
        if os.environ.get("HUB_TEST_SHOW_LOGS"):
            print(p.log_path.read_text(errors="replace")[-5000:])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-broker cluster of this module's own on free ports (deploy/kafka.sh --brokers 3),
    removed at the end; the shared broker is never touched."""
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.script("wipe")


@pytest.fixture
async def whole(cluster: Cluster) -> Cluster:
    """The cluster with its three nodes up and every replica in sync (a test before may
    have just started a node again: it catches up first)."""
    for node in (1, 2, 3):
        await cluster.start_one(node)
    await wait_for(cluster.fully_replicated, timeout_s=180, what="every replica in sync")
    return cluster


async def ledger_topics(cluster: Cluster, prefix: str) -> tuple[Any, Any]:
    t_in, t_out = ledger.topics(prefix)
    report = await apply_topics(KafkaSettings(bootstrap_servers=cluster.bootstrap),
                                [t_in, t_out])
    assert report.replication == 3
    return t_in, t_out


async def test_topics_on_three_brokers_get_three_replicas_and_two_in_sync(
        whole: Cluster, unique: str) -> None:
    t_in, _ = await ledger_topics(whole, f"t{unique}.durable")
    parts = (await whole.describe([t_in.name, t_in.dlq]))
    assert all(len(p["replicas"]) == 3 for ps in parts.values() for p in ps)  # type: ignore[arg-type]
    for name in (t_in.name, t_in.dlq):
        configs = await topic_configs(whole.bootstrap, name)
        assert configs["min.insync.replicas"] == "2"
        assert configs["unclean.leader.election.enable"] == "false"


async def test_the_partition_leader_killed_mid_stream_loses_and_doubles_nothing(
        whole: Cluster, pg_engine: Any, pg_url: str, unique: str, tmp_path: Path,
        procs: list[HubProcess]) -> None:
    cluster, engine, n = whole, pg_engine, 20_000
    t_in, t_out = await ledger_topics(cluster, f"t{unique}.leader")
    ledger.create_tables(engine)
    await publish(cluster.bootstrap, t_in.name, entries(0, n // 2))
    hub = HubProcess(cluster.bootstrap, pg_url, f"g{unique}", f"t{unique}.leader",
                     tmp_path / "hub.log", batch=200)
    procs.append(hub)
    hub.start()
    with Progress(engine) as progress:
        await wait_for(lambda: len(ledger.entry_counts(engine)) >= 2_000, timeout_s=120,
                       what="the hub under way")
        # The second half is published while the leader dies: the test's producer, the
        # hub's consumer and its outbox relay all meet the failover.
        rest = asyncio.create_task(publish(cluster.bootstrap, t_in.name, entries(n // 2, n)))
        victim = await cluster.leader(t_in.name, 0)
        killed_at = time.monotonic()
        await cluster.kill(victim)
        booked_at_kill = len(ledger.entry_counts(engine))
        assert booked_at_kill < n, "the kill must land mid-stream"
        await rest
        figures = await assert_each_effect_once(engine, cluster.bootstrap, t_out.name, n)
        done_at = time.monotonic()
    assert hub.proc is not None
    assert hub.proc.poll() is None, "the hub survived the failover"
    assert hub.terminate() == 0
    stall = progress.longest_stall_after(killed_at, n)
    print(f"\nchaos leader-kill: node {victim} killed at {booked_at_kill}/{n} booked; "
          f"{figures}; longest stall {stall:.1f} s; all delivered {done_at - killed_at:.1f} s "
          "after the kill")
    await cluster.start_one(victim)


async def test_two_brokers_down_the_hub_holds_is_not_ready_and_resumes(
        whole: Cluster, pg_engine: Any, pg_url: str, unique: str, tmp_path: Path,
        procs: list[HubProcess]) -> None:
    cluster, engine, n = whole, pg_engine, 20_000
    t_in, t_out = await ledger_topics(cluster, f"t{unique}.quorum")
    ledger.create_tables(engine)
    await publish(cluster.bootstrap, t_in.name, entries(0, n))
    hub = HubProcess(cluster.bootstrap, pg_url, f"g{unique}", f"t{unique}.quorum",
                     tmp_path / "hub.log", batch=200)
    procs.append(hub)
    hub.start()
    await wait_for(lambda: readiness_is(hub.port, 200), timeout_s=120, what="the hub ready")
    await wait_for(lambda: len(ledger.entry_counts(engine)) >= 1_000, timeout_s=120,
                   what="the hub under way")
    # Keep the survivor: the leader of the out topic's partition 0, where the relay writes.
    survivor = await cluster.leader(t_out.name, 0)
    down = [node for node in (1, 2, 3) if node != survivor]
    await asyncio.gather(*(cluster.kill(node) for node in down))
    killed_at = time.monotonic()
    assert len(ledger.entry_counts(engine)) < n, "the kill must land mid-stream"
    await wait_for(lambda: readiness_is(hub.port, 503), timeout_s=120,
                   what="/readyz not ready while Kafka cannot acknowledge")
    unready_after = time.monotonic() - killed_at
    status, body = await ready(hub.port)
    assert status == 503
    failing = {name for name, check in body["checks"].items() if not check["ok"]}
    assert failing, body
    # The relay's sends are not acknowledged; consumers may also have lost their
    # coordinator. Nothing else (the database, the hub's own tasks) is affected.
    assert "outbox_relay" in failing, body
    assert all(name == "outbox_relay" or name.startswith("consumer:") for name in failing), body
    held = outbox_size(engine)
    assert held > 0, "the records wait in the outbox"
    assert hub.proc is not None
    assert hub.proc.poll() is None
    back_at = time.monotonic()
    await cluster.start_one(down[0])
    started_s = time.monotonic() - back_at
    figures = await assert_each_effect_once(engine, cluster.bootstrap, t_out.name, n)
    delivered_s = time.monotonic() - back_at
    await wait_for(lambda: readiness_is(hub.port, 200), timeout_s=120, what="ready again")
    ready_s = time.monotonic() - back_at
    assert hub.proc.poll() is None
    assert hub.terminate() == 0
    print(f"\nchaos two-down: nodes {down} killed; not ready after {unready_after:.1f} s; "
          f"{held} records held in the outbox; node {down[0]} back (started in "
          f"{started_s:.1f} s): all delivered {delivered_s:.1f} s and ready {ready_s:.1f} s "
          f"after its start began; {figures}")
    await cluster.start_one(down[1])
