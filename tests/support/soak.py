"""A soak through a real `hub run` process with retention in seconds: how large the
bookkeeping tables get while many messages flow, and that they empty afterwards.

Used by tests/chaos/test_soak_retention.py (a smaller run, in CI) and by
benchmarks/soak_retention.py (1,000,000 messages, figures in benchmarks/results/).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.envelope import new_envelope
from tests.support import ledger
from tests.support.hubproc import HubProcess, wait_for
from tests.support.kafka import create_topics, publish
from tests.support.ledger import LedgerEntryRequested

TABLES = ("hub_processed_message", "hub_outbox", "hub_claim_check", "hub_scheduled_retry")


@dataclass
class SoakResult:
    n: int
    retention_s: float
    margin_s: float
    interval_s: float
    seconds: float = 0.0
    rate: float = 0.0
    max_rows: dict[str, int] = field(default_factory=dict)
    final_rows: dict[str, int] = field(default_factory=dict)
    oldest_marker_max_s: float = 0.0
    """The oldest processed marker's age, at its largest over the samples."""
    emptied_after_s: float = 0.0
    """From the last booking to an empty hub_processed_message."""
    samples: int = 0
    doubled: int = 0

    @property
    def kept_s(self) -> float:
        return self.retention_s + self.margin_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kept_s": self.kept_s}


def _sample(engine: Engine) -> tuple[dict[str, int], float, int]:
    with engine.connect() as conn:
        rows = {t: int(conn.execute(sa.text(f"select count(*) from {t}")).scalar() or 0)
                for t in TABLES}
        oldest = conn.execute(sa.text(
            "select extract(epoch from now() - min(processed_at)) from hub_processed_message"
        )).scalar()
        booked = int(conn.execute(sa.text("select count(*) from test_ledger_entry")).scalar()
                     or 0)
    return rows, float(oldest or 0.0), booked


async def soak(kafka: str, db_url: str, engine: Engine, unique: str, log_dir: Path, n: int,
               *, retention_s: float = 5.0, margin_s: float = 1.0, interval_s: float = 1.0,
               chunk: int = 10_000, procs: list[HubProcess] | None = None,
               min_duration_s: float = 0.0) -> SoakResult:
    """``n`` messages through a ``hub run`` process, sampling its tables every second.
    ``min_duration_s`` paces the publishing (chunk by chunk) so the stream lasts at least
    that long: the retention can only bound the tables of a stream longer than itself."""
    result = SoakResult(n=n, retention_s=retention_s, margin_s=margin_s, interval_s=interval_s)
    prefix = f"t{unique}.soak"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka, [t_in, t_out])
    ledger.create_tables(engine)
    hub = HubProcess(kafka, db_url, f"g{unique}", prefix, log_dir / "hub-soak.log")
    hub.env.update({
        "LEDGER_RETENTION_MS": str(int(retention_s * 1000)),
        "HUB_RETENTION__INTERVAL_S": str(interval_s),
        "HUB_RETENTION__MARGIN_S": str(margin_s),
    })
    if procs is not None:
        procs.append(hub)
    hub.start()

    async def stream() -> None:
        starts = range(0, n, chunk)
        spacing = min_duration_s / len(starts) if min_duration_s > 0 and len(starts) > 0 else 0.0
        for k, start in enumerate(starts):
            if spacing:  # pacing the producer, not waiting on a result
                await asyncio.sleep(max(0.0, started + k * spacing - time.monotonic()))
            await publish(kafka, t_in.name, [
                new_envelope(LedgerEntryRequested(entry_no=i, amount=i),
                             correlation_id=f"case-{i % 997}", procuring_entity="saitama-pref",
                             producer="soak") for i in range(start, min(n, start + chunk))])

    started = time.monotonic()
    producer = asyncio.create_task(stream())
    booked = 0
    try:
        while booked < n:
            rows, oldest, booked = await asyncio.to_thread(_sample, engine)
            result.samples += 1
            for t, c in rows.items():
                result.max_rows[t] = max(result.max_rows.get(t, 0), c)
            result.oldest_marker_max_s = max(result.oldest_marker_max_s, oldest)
            if time.monotonic() - started > 3600:
                raise AssertionError(f"soak: {booked} of {n} booked after an hour")
            if producer.done() and producer.exception() is not None:
                raise AssertionError("soak: publishing failed") from producer.exception()
            await asyncio.sleep(1.0)  # the sampling period
    finally:
        if not producer.done():
            producer.cancel()
    await producer
    result.seconds = time.monotonic() - started
    result.rate = n / result.seconds
    last = time.monotonic()

    def empty() -> bool:
        rows, oldest, _ = _sample(engine)
        result.oldest_marker_max_s = max(result.oldest_marker_max_s, oldest)
        return rows["hub_processed_message"] == 0 and rows["hub_outbox"] == 0

    await wait_for(empty, timeout_s=result.kept_s + interval_s + 120,
                   what="the processed markers pruned after the stream")
    result.emptied_after_s = time.monotonic() - last
    result.final_rows = _sample(engine)[0]
    counts = ledger.entry_counts(engine)
    result.doubled = sum(1 for v in counts.values() if v > 1)
    assert set(counts) == set(range(n)), f"{n - len(counts)} entries lost"
    assert hub.terminate() == 0
    return result
