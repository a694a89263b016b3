"""Real `hub run` processes: killed mid-stream, a broker restarted mid-stream, and two
processes in one consumer group. Every effect exactly once, nothing lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.db import OutboxRecord
from schemas.envelope import new_envelope
from schemas.wire import decode
from tests.support import ledger
from tests.support.hubproc import ROOT, HubProcess, free_port, wait_for
from tests.support.kafka import create_topics, group_is_stable_with, publish, read_all
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow]


def entries(start: int, stop: int) -> list[Any]:
    return [new_envelope(LedgerEntryRequested(entry_no=n, amount=n),
                         correlation_id=f"case-{n % 101}", procuring_entity="saitama-pref",
                         producer="test") for n in range(start, stop)]


def outbox_size(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(
            OutboxRecord.__table__)).scalar() or 0)


async def assert_exactly_once(engine: Any, bootstrap: str, out_topic: str, n: int) -> None:
    await wait_for(lambda: len(ledger.entry_counts(engine)) == n, timeout_s=180,
                   what=f"{n} entries booked")
    await wait_for(lambda: outbox_size(engine) == 0, timeout_s=60, what="outbox drained")
    counts = ledger.entry_counts(engine)
    doubled = {k: v for k, v in counts.items() if v != 1}
    assert not doubled, f"effects doubled: {list(doubled.items())[:10]}"
    assert set(counts) == set(range(n))
    # The outbox is drained, so the broker has acknowledged every event: read the topic to
    # its end. A process killed between a send and its delete leaves that record twice on
    # the topic (consumers drop the repeat by message id), so "the first n records" may
    # hold repeats and miss the last events.
    records = await read_all(bootstrap, out_topic, timeout_s=120)
    copies = Counter(decode(r.value, r.headers).payload.entry_no for r in records)
    assert set(copies) == set(range(n)), f"{n - len(copies)} events missing"
    assert max(copies.values()) <= 2, "a record sent more than twice"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for p in started:
        p.ensure_stopped()
    for p in started:
        if os.environ.get("HUB_TEST_SHOW_LOGS"):
            print(p.log_path.read_text(errors="replace")[-3000:])


async def test_sigkill_mid_stream_then_restart_leaves_every_effect_once(
        kafka_bootstrap: str, db_url: str, engine: Any, unique: str, tmp_path: Path,
        procs: list[HubProcess]) -> None:
    prefix = f"t{unique}.kill"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    await publish(kafka_bootstrap, t_in.name, entries(0, 10_000))
    first = HubProcess(kafka_bootstrap, db_url, f"g{unique}", prefix, tmp_path / "hub1.log",
                       batch=200)
    procs.append(first)
    first.start()
    await wait_for(lambda: len(ledger.entry_counts(engine)) >= 1_500, timeout_s=120,
                   what="the first process under way")
    first.kill()
    done_at_kill = len(ledger.entry_counts(engine))
    assert 0 < done_at_kill < 10_000, "the kill must land mid-stream"
    second = HubProcess(kafka_bootstrap, db_url, f"g{unique}", prefix, tmp_path / "hub2.log")
    procs.append(second)
    second.start()
    await assert_exactly_once(engine, kafka_bootstrap, t_out.name, 10_000)
    assert second.terminate() == 0  # a clean stop on SIGTERM


async def test_two_processes_share_partitions_and_survive_one_stopping(
        kafka_bootstrap: str, pg_engine: Any, pg_url: str, unique: str, tmp_path: Path,
        procs: list[HubProcess]) -> None:
    # Several hub processes share PostgreSQL; SQLite is the single-process embedded default.
    engine, db_url = pg_engine, pg_url
    prefix = f"t{unique}.pair"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    a = HubProcess(kafka_bootstrap, db_url, f"g{unique}", prefix, tmp_path / "a.log", batch=50)
    b = HubProcess(kafka_bootstrap, db_url, f"g{unique}", prefix, tmp_path / "b.log", batch=50)
    procs.extend([a, b])
    a.start()
    b.start()
    await wait_for(lambda: group_is_stable_with(kafka_bootstrap, f"g{unique}.ledger", 2),
                   timeout_s=120, what="both processes in the group, partitions assigned")
    await publish(kafka_bootstrap, t_in.name, entries(0, 10_000))
    await wait_for(lambda: len(ledger.workers(engine)) == 2, timeout_s=120,
                   what="both processes booking entries")
    await wait_for(lambda: len(ledger.entry_counts(engine)) >= 3_000, timeout_s=120,
                   what="3,000 entries")
    assert b.terminate() == 0  # stopped mid-stream: its partitions move to a
    assert len(ledger.entry_counts(engine)) < 10_000, "the stop must land mid-stream"
    await assert_exactly_once(engine, kafka_bootstrap, t_out.name, 10_000)
    assert set(ledger.workers(engine)) == {a.proc.pid, b.proc.pid}  # type: ignore[union-attr]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A broker of its own (same deploy script, another port and data dir) to restart."""
    port = free_port()
    env = {**os.environ, "HUB_RUN_DIR": str(tmp_path / "run"), "HUB_KAFKA_PORT": str(port),
           "HUB_KAFKA_CONTROLLER_PORT": str(free_port())}
    subprocess.run(["bash", "deploy/kafka.sh", "start"], cwd=ROOT, env=env, check=True,
                   timeout=180)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run(["bash", "deploy/kafka.sh", "stop"], cwd=ROOT, env=env, check=False,
                       timeout=120)


async def test_broker_restart_mid_stream_loses_nothing(
        own_broker: tuple[str, dict[str, str]], db_url: str, engine: Any, unique: str,
        tmp_path: Path, procs: list[HubProcess]) -> None:
    bootstrap, env = own_broker
    prefix = f"t{unique}.restart"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    # Enough of a stream that the hub is still working through it when the broker goes
    # down: stopping the broker takes seconds, and the hub books thousands of entries a second.
    first = 20_000
    await publish(bootstrap, t_in.name, entries(0, first))
    hub = HubProcess(bootstrap, db_url, f"g{unique}", prefix, tmp_path / "hub.log", batch=100)
    procs.append(hub)
    hub.start()
    await wait_for(lambda: len(ledger.entry_counts(engine)) >= 500, timeout_s=120,
                   what="the hub under way")
    await asyncio.to_thread(subprocess.run, ["bash", "deploy/kafka.sh", "stop"], cwd=ROOT,
                            env=env, check=True, timeout=180)
    booked_while_down = len(ledger.entry_counts(engine))
    assert booked_while_down < first or outbox_size(engine) > 0, \
        "the broker must go down mid-stream"
    await asyncio.sleep(2)  # the hub meets a broker that is not there
    await asyncio.to_thread(subprocess.run, ["bash", "deploy/kafka.sh", "start"], cwd=ROOT,
                            env=env, check=True, timeout=180)
    await publish(bootstrap, t_in.name, entries(first, first + 2_000))
    await assert_exactly_once(engine, bootstrap, t_out.name, first + 2_000)
    assert hub.proc is not None
    assert hub.proc.poll() is None, "the hub survived the restart"
