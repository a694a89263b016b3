"""An oversized record and a dead-letter copy over the producer's limit, under a real
`hub run` process: the relay keeps going, the process is restarted on the same data
without dying again, later poison still reaches the DLQ, nothing stays in the outbox, and
`hub dlq list` shows them all (the large ones stored by reference)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.db import OutboxRecord
from hub.outbox import dump_headers
from schemas.envelope import new_envelope, utc_now
from tests.e2e.test_relay_faults import BIG, publish_big
from tests.support import ledger
from tests.support.hubproc import ROOT, HubProcess, wait_for
from tests.support.kafka import create_topics, publish
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]
OUTBOX = OutboxRecord.__table__


def entries(start: int, stop: int) -> list[Any]:
    return [new_envelope(LedgerEntryRequested(entry_no=n, amount=n),
                         correlation_id=f"case-{n % 7}", procuring_entity="saitama-pref",
                         producer="chaos") for n in range(start, stop)]


def outbox_rows(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar() or 0)


def hub_cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "hub.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def metric(port: int, line_start: str) -> float | None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_oversized_record_and_dead_letter_over_the_limit(
        kafka_bootstrap: str, pg_url: str, pg_engine: Any, unique: str, tmp_path: Path,
        procs: list[HubProcess]) -> None:
    prefix = f"t{unique}.overlimit"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(pg_engine)
    first = HubProcess(kafka_bootstrap, pg_url, f"g{unique}", prefix, tmp_path / "hub1.log")
    procs.append(first)
    first.start()
    await publish(kafka_bootstrap, t_in.name, entries(0, 100))
    # 1. A record of 2,096,900 bytes on the topic: its dead-letter copy is over the limit.
    big = b"z" * BIG
    await publish_big(kafka_bootstrap, t_in.name, big)
    # 2. An oversized record in the outbox (written inline by an older hub): the relay
    #    checks it in before sending; the consumer resolves it, finds it too large for a
    #    message (over 1 MiB) and dead-letters it, by reference again.
    inline = b'{"type":"test.ledger.entry-requested","pad":"' + b"p" * 1_500_000 + b'"}'
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX).values(topic=t_in.name, key=b"case-x", value=inline,
                                          headers=dump_headers([]), created_at=utc_now()))
    await publish(kafka_bootstrap, t_in.name, entries(100, 200))
    await wait_for(lambda: len(ledger.entry_counts(pg_engine)) == 200, timeout_s=120,
                   what="200 entries booked around the oversized records")
    await wait_for(lambda: outbox_rows(pg_engine) == 0, timeout_s=60, what="outbox drained")
    assert first.proc is not None
    assert first.proc.poll() is None
    assert await metric(first.port, 'hub_task_up{task="outbox-relay"}') == 1.0
    assert await metric(first.port, 'hub_task_restarts_total{task="outbox-relay"}') is None
    # 3. Restarted on the same database and topics: it does not die on the same rows.
    assert first.terminate() == 0
    second = HubProcess(kafka_bootstrap, pg_url, f"g{unique}", prefix, tmp_path / "hub2.log")
    procs.append(second)
    second.start()
    await publish_big(kafka_bootstrap, t_in.name, b"later poison, not JSON")
    await publish(kafka_bootstrap, t_in.name, entries(200, 250))
    await wait_for(lambda: len(ledger.entry_counts(pg_engine)) == 250, timeout_s=120,
                   what="the restarted hub booking")
    env = {**second.env}

    def three_letters() -> bool:
        return len(hub_cli(env, "dlq", "list", "--topic", t_in.name)) >= 3

    await wait_for(three_letters, timeout_s=60, what="three dead letters")
    await wait_for(lambda: outbox_rows(pg_engine) == 0, timeout_s=60, what="outbox drained")
    listed = hub_cli(env, "dlq", "list", "--topic", t_in.name)
    reasons = sorted(d["reason"] for d in listed)
    assert reasons == ["not-json", "oversize", "oversize"]
    by_ref = sorted(d["stored_by_reference"]["bytes"] for d in listed
                     if "stored_by_reference" in d)
    assert by_ref == [len(inline), BIG]
    big_letter = next(d for d in listed if d.get("stored_by_reference", {}).get("bytes") == BIG)
    shown = hub_cli(env, "dlq", "show", "--topic", t_in.name, big_letter["ref"])
    assert shown[0]["value"] == "z" * 4000  # read back from the database (first 4,000)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.port}") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
    counts = ledger.entry_counts(pg_engine)
    assert max(counts.values()) == 1
    assert second.terminate() == 0
