"""PostgreSQL stopped for 30 s under a `hub run` process in the middle of a stream: the
hub waits (the process lives, /readyz says the database is down, nothing is committed or
acknowledged meanwhile) and resumes when the database is back: every entry booked once,
every event on its topic. The figures go to docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.db import OutboxRecord, create_db_engine
from hub.migrations import upgrade
from schemas.envelope import new_envelope
from schemas.wire import decode
from tests.chaos.conftest import OwnPostgres
from tests.support import ledger
from tests.support.hubproc import HubProcess, wait_for
from tests.support.kafka import create_topics, publish, read_all
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

N = 10_000
CHUNK = 50
OUTAGE_S = 30.0


def entries(start: int, stop: int) -> list[Any]:
    return [new_envelope(LedgerEntryRequested(entry_no=n, amount=n),
                         correlation_id=f"case-{n % 101}", procuring_entity="saitama-pref",
                         producer="chaos") for n in range(start, stop)]


def booked(engine: Any) -> int:
    try:
        return len(ledger.entry_counts(engine))
    except sa.exc.OperationalError:
        return -1  # the database is down


async def test_postgres_down_for_30_s_mid_stream(kafka_bootstrap: str, unique: str,
                                                 own_postgres: OwnPostgres, tmp_path: Path,
                                                 procs: list[HubProcess]) -> None:
    engine = create_db_engine(own_postgres.url)
    upgrade(engine)
    ledger.create_tables(engine)
    prefix = f"t{unique}.pgdown"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    hub = HubProcess(kafka_bootstrap, own_postgres.url, f"g{unique}", prefix,
                     tmp_path / "hub.log", batch=200)
    procs.append(hub)
    hub.start()
    published = 0

    async def stream() -> None:
        # The load: CHUNK entries at a time, about 200/s, before, during and after the
        # outage (pacing a producer, not waiting for a result).
        nonlocal published
        for start in range(0, N, CHUNK):
            await publish(kafka_bootstrap, t_in.name, entries(start, start + CHUNK))
            published = start + CHUNK
            await asyncio.sleep(0.25)

    producer = asyncio.create_task(stream())
    base = f"http://127.0.0.1:{hub.port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        await wait_for(lambda: booked(engine) >= 1_000, timeout_s=120,
                       what="the hub under way")
        own_postgres.stop()
        down_at = time.monotonic()
        engine.dispose()
        ready_seen: list[int] = []
        # The outage lasts OUTAGE_S; meanwhile the process must live and say it is not ready.
        while time.monotonic() - down_at < OUTAGE_S:
            assert hub.proc is not None
            assert hub.proc.poll() is None, "the hub ended while the database was down"
            try:
                ready_seen.append((await client.get("/readyz")).status_code)
            except httpx.TransportError:
                ready_seen.append(0)
            await asyncio.sleep(0.5)
        assert 503 in ready_seen, f"/readyz never said not ready: {Counter(ready_seen)}"
        own_postgres.start()
        back_at = time.monotonic()
        before = booked(engine)
        await wait_for(lambda: booked(engine) > before, timeout_s=120,
                       what="bookings resuming")
        resumed_s = time.monotonic() - back_at
        backlog = published  # what had come in up to the database's return
        await wait_for(lambda: booked(engine) >= backlog, timeout_s=300,
                       what="the outage's backlog booked")
        caught_up_s = time.monotonic() - back_at
        await producer
        await wait_for(lambda: booked(engine) == N, timeout_s=300, what=f"all {N} booked")
        await wait_for(lambda: _outbox(engine) == 0, timeout_s=60, what="outbox drained")
        await wait_for(lambda: _ready(client), timeout_s=30, what="/readyz ready again")
        assert (await client.get("/healthz")).status_code == 200
    counts = ledger.entry_counts(engine)
    assert set(counts) == set(range(N))
    assert max(counts.values()) == 1, "an entry booked twice"
    records = await read_all(kafka_bootstrap, t_out.name, timeout_s=120)
    events = Counter(decode(r.value, r.headers).payload.entry_no for r in records)
    assert set(events) == set(range(N)), f"{N - len(events)} events lost"
    print(json.dumps({"fault": "postgres stopped 30 s", "n": N, "lost": 0,
                      "doubled_effects": 0, "events_sent_twice": sum(
                          1 for v in events.values() if v > 1),
                      "booked_when_stopped": before, "backlog": backlog,
                      "resumed_after_s": round(resumed_s, 1),
                      "backlog_done_after_s": round(caught_up_s, 1)}))
    assert hub.terminate() == 0
    engine.dispose()


def _outbox(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(
            OutboxRecord.__table__)).scalar() or 0)


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200
