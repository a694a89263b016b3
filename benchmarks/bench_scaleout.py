"""Benchmark: the delivery pipeline scaled out, 1, 2 and 3 `hub run` processes in one
consumer group on a 3-broker KRaft cluster (target: CPU per message within 15 % of one
process's, i.e. no coordination overhead).

Each run: fresh topics made as ``hub topics apply`` makes them on three brokers (6
partitions, three replicas, min.insync.replicas 2), a fresh PostgreSQL database, K real
`hub run` processes (``--bootstrap tests.support.ledger:wiring``: the idempotent consumer
and the outbox, one row and one event per message), joined as one group before the stream
starts. Then N messages are published; figures:
- CPU seconds per message: the K processes' CPU (their /proc figures) from the moment the
  stream starts until the last output is read, over N; also less what the K processes
  spend idle in that time (measured over 5 s before the stream: consumer, relay and retry
  polls), which does not grow with the messages but with processes and seconds;
- messages/s: the slope of the outputs' Kafka timestamps (least squares, as
  bench_registration's ``steady_rate``).
Rounds alternate the order (1, 2, 3, then 3, 2, 1); the median per K is reported.
The cluster is started here (deploy/kafka.sh --brokers 3) unless ``BENCH_KAFKA_BOOTSTRAP``
names one. Results: benchmarks/results/scaleout.json.

    .venv/bin/python -m benchmarks.bench_scaleout [--n 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from benchmarks._cases_parts import cpu_seconds
from benchmarks._database import drop_database, fresh_database
from benchmarks._kafka import GROUP_PREFIX, TOPIC_PREFIX
from benchmarks.bench_registration import steady_rate
from hub.db import create_db_engine
from hub.settings import KafkaSettings
from hub.topics import apply_topics
from schemas.envelope import new_envelope
from tests.support import ledger
from tests.support.cluster import start_cluster
from tests.support.hubproc import HubProcess, wait_for
from tests.support.kafka import group_is_stable_with, publish
from tests.support.ledger import LedgerEntryRequested

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET = 0.15
IDLE_S = 5.0


async def collect(bootstrap: str, topic: str, expect: int, timeout_s: float) -> list[int]:
    """The outputs' timestamps, one per input (by causation id)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    stamps: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(stamps) < expect and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                for r in recs:
                    stamps.setdefault(str(orjson.loads(r.value)["causation_id"]), r.timestamp)
    finally:
        await consumer.stop()
    if len(stamps) < expect:
        raise RuntimeError(f"only {len(stamps)} of {expect} outputs within {timeout_s} s")
    return sorted(stamps.values())


async def measure(bootstrap: str, processes: int, n: int, logs: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    prefix = f"{TOPIC_PREFIX}.{tag}.ledger"
    t_in, t_out = ledger.topics(prefix)
    await apply_topics(KafkaSettings(bootstrap_servers=bootstrap), [t_in, t_out])
    db_url = await asyncio.to_thread(fresh_database)
    engine = create_db_engine(db_url)
    ledger.create_tables(engine)
    group_prefix = f"{GROUP_PREFIX}-{tag}"
    hubs = [HubProcess(bootstrap, db_url, group_prefix, prefix, logs / f"{tag}-{i}.log")
            for i in range(processes)]
    messages = [new_envelope(LedgerEntryRequested(entry_no=i, amount=i),
                             correlation_id=f"case-{i % 997}", procuring_entity="saitama-pref",
                             producer="bench") for i in range(n)]
    try:
        for hub in hubs:
            hub.start()
        await wait_for(lambda: group_is_stable_with(bootstrap, f"{group_prefix}.ledger",
                                                    processes),
                       timeout_s=180, what=f"{processes} processes in the group")
        pids = [hub.proc.pid for hub in hubs if hub.proc is not None]
        # Each process's CPU while idle in the group (consumer polls, relay and retry
        # polls), to tell that cost from the per-message one.
        idle_at, idle_cpu = time.monotonic(), sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(IDLE_S)
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        started = time.monotonic()
        idle_rate = (cpu_before - idle_cpu) / (started - idle_at) / processes
        await publish(bootstrap, t_in.name, messages)
        stamps = await collect(bootstrap, t_out.name, n, 600)
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        busy_s = time.monotonic() - started
        booked = ledger.workers(engine)
    finally:
        for hub in hubs:
            hub.terminate()
        engine.dispose()
        await asyncio.to_thread(drop_database, db_url)
    return {"processes": processes, "messages": n,
            "cpu_ms_per_message": round(1000 * cpu / n, 4),
            "idle_cpu_per_process": round(idle_rate, 4),
            "cpu_ms_per_message_less_idle": round(
                1000 * (cpu - idle_rate * processes * busy_s) / n, 4),
            "seconds": round(busy_s, 1),
            "messages_per_s": round(steady_rate(stamps)),
            "booked_per_process": sorted(booked.values(), reverse=True)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = None
        bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP")
        if not bootstrap:
            cluster = await asyncio.to_thread(start_cluster, Path(tmp) / "cluster")
            bootstrap = cluster.bootstrap
        logs = Path(tmp) / "logs"
        logs.mkdir()
        try:
            runs: dict[int, list[dict[str, Any]]] = {k: [] for k in args.processes}
            for round_no in range(1, args.rounds + 1):
                order = args.processes if round_no % 2 else list(reversed(args.processes))
                for k in order:
                    figures = await measure(bootstrap, k, args.n, logs)
                    runs[k].append(figures)
                    print(f"round {round_no}: {figures}", flush=True)
        finally:
            if cluster is not None:
                await asyncio.to_thread(cluster.script, "wipe")
    first = runs[args.processes[0]]
    base = statistics.median(r["cpu_ms_per_message"] for r in first)
    base_net = statistics.median(r["cpu_ms_per_message_less_idle"] for r in first)
    summary = {}
    for k, rs in runs.items():
        cpu = statistics.median(r["cpu_ms_per_message"] for r in rs)
        net = statistics.median(r["cpu_ms_per_message_less_idle"] for r in rs)
        summary[str(k)] = {
            "cpu_ms_per_message_median": round(cpu, 4),
            "cpu_ms_per_message_less_idle_median": round(net, 4),
            "idle_cpu_per_process_median": round(
                statistics.median(r["idle_cpu_per_process"] for r in rs), 4),
            "messages_per_s_median": round(statistics.median(r["messages_per_s"] for r in rs)),
            "cpu_vs_one_process": round(cpu / base, 3),
            "cpu_less_idle_vs_one_process": round(net / base_net, 3),
            "within_target": cpu / base <= 1 + TARGET,
            "runs": rs}
    return {
        "benchmark": "delivery pipeline scaled out: K hub run processes in one group",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "kafka": "Apache Kafka 4.1.1, 3-broker KRaft cluster on loopback (deploy/kafka.sh "
                 "--brokers 3); topics of 6 partitions, 3 replicas, min.insync.replicas 2",
        "database": "PostgreSQL on loopback, fsync on",
        "target": f"CPU per message within {TARGET:.0%} of one process's",
        "results": summary,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--output", type=Path, default=RESULTS / "scaleout.json")
    cli = parser.parse_args()
    outcome = asyncio.run(main(cli))
    cli.output.write_text(json.dumps(outcome, indent=2))
    for k, figures in outcome["results"].items():
        print(f"{k} process(es): {figures['cpu_ms_per_message_median']} ms CPU per message "
              f"({figures['cpu_vs_one_process']:.2f}x one process; less idle "
              f"{figures['cpu_ms_per_message_less_idle_median']} ms, "
              f"{figures['cpu_less_idle_vs_one_process']:.2f}x), "
              f"{figures['messages_per_s_median']} messages/s")
