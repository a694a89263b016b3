"""Parts of the complete-case benchmark (bench_cases) that are not the measurement itself.

- :class:`CaseFeed`: one Kafka consumer for all cases in flight. hub.sample's
  :class:`~hub.sample.timeline.CaseTimeline` reads its own consumer and finds events by
  type only, so N concurrent cases need N timelines; they are fed here from one consumer
  by correlation id instead of polling N consumers.
- :class:`KafkaPublisher`: the city's systems putting 案件情報, 開札, 申出書 and the
  surety uploads on Kafka directly (the hub runs in another process).
- :class:`SoftBackend`: the contractor's IC card in software, with the key of a card the
  test PKI issued (tests/card/softcard.py's session). The card itself is benchmarked in
  bench_card; here it must not be what bounds the rate.
- :func:`start_groups_at_end`: the child hub's consumer groups begin at the topics'
  current end, so a fresh group does not replay the shared ``proc.*`` history.
- what is measured: CPU per process and of the machine (/proc), peak RSS, and the
  summary (:func:`summarise`: cases/s, latency percentiles, per-stage times).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pkgutil
import socket
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from devkit.pki import CardCredentials
from hub.dlq import partitions_of
from hub.sample.timeline import WATCHED, CaseTimeline
from schemas.envelope import Envelope
from schemas.topics import TopicSpec
from schemas.wire import WireError, decode, encode
from tests.card.softcard import SoftCard

__all__ = [
    "STAGES",
    "TARGET",
    "CaseFeed",
    "FedTimeline",
    "KafkaPublisher",
    "SoftBackend",
    "cpu_seconds",
    "free_port",
    "machine_busy",
    "peak_rss_kib",
    "postgres_cpu_seconds",
    "start_groups_at_end",
    "summarise",
    "what_bounds",
]

TARGET = 10.0
"""Complete cases per second on one hub process (issue 6)."""
STAGES = ("register", "open_case", "performance_surety", "contract_set", "contractor_agrees",
          "contractor_signs", "city_signs", "erp_contract", "advance_surety",
          "erp_advance_payment")


@dataclass
class FedTimeline(CaseTimeline):
    """A CaseTimeline that :class:`CaseFeed` fills; ``poll`` waits for the next arrival."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def poll(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.arrived.wait(), timeout_s)
        self.arrived.clear()


def _register_every_message() -> None:
    """decode() knows a message type once its schema module is imported (the hub imports
    them all through its wiring; this driver reaches only some)."""
    import schemas

    for info in pkgutil.iter_modules(schemas.__path__):
        importlib.import_module(f"schemas.{info.name}")


class CaseFeed:
    """Reads the watched topics from their end and hands each event to its case."""

    def __init__(self, bootstrap: str) -> None:
        _register_every_message()
        # as the hub's consumers (hub.settings.KafkaSettings.fetch_max_wait_ms): records
        # end the broker's wait at once, the wait only bounds the idle fetches
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                          enable_auto_commit=False, fetch_max_wait_ms=100)
        self._routes: dict[str, FedTimeline] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        parts = await partitions_of(self._consumer, [t.name for t in WATCHED])
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    def follow(self, timeline: FedTimeline) -> None:
        for key in timeline.keys:
            self._routes[key] = timeline

    def forget(self, timeline: FedTimeline) -> None:
        for key in timeline.keys:
            self._routes.pop(key, None)

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    try:
                        env = decode(r.value, r.headers)
                    except WireError:
                        continue
                    timeline = self._routes.get(env.correlation_id)
                    if timeline is not None:
                        timeline.seen.append((r.topic, env))
                        timeline.arrived.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


class KafkaPublisher:
    """hub.sample's Publisher on a plain producer (acks=all, like the hub's relay)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                          linger_ms=2)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, topic: TopicSpec, *envelopes: Envelope[Any]) -> None:
        for env in envelopes:
            key, value, headers = encode(env)
            await self._producer.send_and_wait(topic.name, value=value, key=key,
                                               headers=headers)


class SoftBackend:
    """card_agent.card.CardBackend with one software card in one 'reader'."""

    def __init__(self, creds: CardCredentials) -> None:
        self._creds = creds
        self._card: SoftCard | None = None

    def readers(self) -> Sequence[str]:
        return [f"soft-{self._creds.serial}"]

    def open(self, reader: str | None = None) -> SoftCard:
        # Opened once (closing it is a no-op): loading and checking its RSA key file is
        # ~20 ms CPU, three times a case, which a real card's session does not cost.
        if self._card is None:
            self._card = SoftCard(self._creds)
        return self._card


async def start_groups_at_end(bootstrap: str, groups: Mapping[str, Sequence[str]]) -> None:
    """Commit each group's offsets at the current end of its topics (group -> topic names)."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await probe.start()
    try:
        ends: dict[str, dict[TopicPartition, int]] = {}
        for group, topics in groups.items():
            parts = await partitions_of(probe, list(topics))
            ends[group] = await probe.end_offsets(parts)
    finally:
        await probe.stop()
    for group, offsets in ends.items():
        committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                     enable_auto_commit=False)
        await committer.start()
        try:
            committer.assign(list(offsets))
            await committer.commit({tp: OffsetAndMetadata(off, "") for tp, off in
                                    offsets.items()})
        finally:
            await committer.stop()


# -- measuring ------------------------------------------------------------------------------

def peak_rss_kib(pid: int) -> int:
    """A process's peak resident memory (VmHWM: its own, from its exec on)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU seconds of the PostgreSQL processes alive now (approximate: the backends of
    connections closed meanwhile are gone, and other users' queries count too)."""
    total = 0.0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                total += cpu_seconds(int(comm.parent.name))
        except OSError:
            continue
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summarise(timings: list[dict[str, float]], failures: list[str], n: int) -> dict[str, Any]:
    done = len(timings)
    out: dict[str, Any] = {"cases": n, "completed": done, "failed": len(failures),
                           "failures": failures[:10]}
    if not timings:
        return {**out, "cases_per_s": 0.0}
    first = min(t["start"] for t in timings)
    ends = sorted(t["end"] for t in timings)
    span = ends[-1] - first
    latency = [t["end"] - t["start"] for t in timings]
    lo, hi = ends[int(0.1 * (done - 1))], ends[int(0.9 * (done - 1))]
    middle = (int(0.9 * (done - 1)) - int(0.1 * (done - 1))) / (hi - lo) if hi > lo else 0.0
    out.update({
        "span_s": round(span, 1),
        "cases_per_s": round(done / span, 2),
        "cases_per_s_middle_80pct": round(middle, 2),
        "latency_s": {"p50": _pct(latency, 0.5), "p95": _pct(latency, 0.95),
                      "p99": _pct(latency, 0.99), "max": round(max(latency), 2)},
        "stage_s": {s: {"median": round(statistics.median(t[s] for t in timings), 3),
                        "p95": _pct([t[s] for t in timings], 0.95)} for s in STAGES},
    })
    return out


def what_bounds(run: dict[str, Any], cpus: int) -> dict[str, Any]:
    """CPU seconds per completed case by process, and the rate each share allows on
    ``cpus`` cores if it had them to itself: the hub's is its own ceiling here."""
    done, cpu = run.get("completed", 0), run.get("cpu_s")
    if not done or not cpu:
        return {}
    per_case = {k: round(cpu[k] / done, 2) for k in ("hub", "driver", "peers", "kafka",
                                                     "postgres") if k in cpu}
    return {"cpu_s_per_case": per_case,
            # an upper bound: PostgreSQL and Kafka work for the hub too
            "hub_only_ceiling_cases_per_s": round(cpus / max(per_case["hub"], 1e-3), 2),
            "hub_cpu_s_per_case_for_the_target": round(cpus / TARGET, 2)}
