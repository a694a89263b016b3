"""Benchmark: the delivery pipeline scaled out, 1, 2 and 3 `hub run` processes in one
consumer group on a 3-broker KRaft cluster (target: CPU per message within 15 % of one
process's, i.e. no coordination overhead).

Each run: fresh topics made as ``hub topics apply`` makes them on three brokers (6
partitions, three replicas, min.insync.replicas 2), a fresh PostgreSQL database, K real
`hub run` processes (``--bootstrap tests.support.ledger:wiring``: the idempotent consumer
and the outbox, one row and one event per message), joined as one group before the stream
starts. Then N messages, in one of two modes:
- ``backlog`` (saturation; the target is judged on it): the K processes are stopped
  (SIGSTOP) while the messages are published, then continued (SIGCONT) with all of them
  waiting, so every process handles full batches. Scaling out is for when one process
  cannot keep up; this compares K processes with one doing the same work flat out;
- ``stream``: the messages are published while the processes handle them. One publisher
  is slower than K processes, so each process handles 1/K of its rate in smaller batches
  and idles in between: the per-batch costs (a transaction, an outbox send, an offset
  commit) and the per-second ones (polls) fall on fewer messages. That is the price of
  idle capacity, reported beside, not coordination.
Figures per run:
- CPU seconds per message: the K processes' CPU (their /proc figures) from the moment the
  stream starts (backlog: the processes continue) until the last output is read, over N;
  also less what the K processes spend idle in that time (measured over 5 s before:
  consumer, relay and retry polls). That estimate is rough (a busy consumer's polls are
  its fetches, counted twice), so the target is judged on the CPU as measured;
- messages/s: the slope of the outputs' Kafka timestamps (least squares, as
  bench_registration's ``steady_rate``);
- what the CPU went to: batches and their mean size (the hub's handler histogram), outbox
  records published and output records (more than N: records sent twice), the processes'
  seconds waiting for a core (run queue, all threads' ``schedstat``) and their context
  switches per message (contention), the load average, and whether the group of K was
  still stable after (a member dropped while stopped would have cost a rebalance).
Rounds alternate the order (1, 2, 3, then 3, 2, 1); the median per K is reported.
The cluster is started here (deploy/kafka.sh --brokers 3, on ports of its own) unless
``BENCH_KAFKA_BOOTSTRAP`` names one. Results: benchmarks/results/scaleout.json.

    .venv/bin/python -m benchmarks.bench_scaleout [--n 20000] [--rounds 2] [--mode both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
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


async def collect(bootstrap: str, topic: str, expect: int,
                  timeout_s: float) -> tuple[list[int], int]:
    """The outputs' timestamps, one per input (by causation id), and how many records the
    output topic had by then (more than ``expect``: events sent twice)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    stamps: dict[str, int] = {}
    records = 0
    deadline = time.monotonic() + timeout_s
    try:
        while len(stamps) < expect and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                records += len(recs)
                for r in recs:
                    stamps.setdefault(str(orjson.loads(r.value)["causation_id"]), r.timestamp)
    finally:
        await consumer.stop()
    if len(stamps) < expect:
        raise RuntimeError(f"only {len(stamps)} of {expect} outputs within {timeout_s} s")
    return sorted(stamps.values()), records


def proc_counters(pid: int) -> dict[str, float]:
    """A process's CPU seconds, its seconds waiting for a core (``schedstat``: run queue
    delay, what contention adds) and its context switches (voluntary: it waited for I/O;
    involuntary: the scheduler took the core away)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    switches = {line.split(":")[0]: int(line.split()[1]) for line in status
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))}
    # /proc/<pid>/schedstat is the main thread's; the worker threads are under task/.
    wait_all = sum(int((t / "schedstat").read_text().split()[1])
                   for t in Path(f"/proc/{pid}/task").iterdir()
                   if (t / "schedstat").exists())
    return {"cpu_s": cpu_seconds(pid), "run_queue_s": wait_all / 1e9,
            "voluntary_switches": switches.get("voluntary_ctxt_switches", 0),
            "involuntary_switches": switches.get("nonvoluntary_ctxt_switches", 0)}


def total(pids: list[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid in pids:
        for k, v in proc_counters(pid).items():
            out[k] = out.get(k, 0.0) + v
    return out


def scrape(port: int) -> dict[str, float]:
    """The hub's own counters that tell per-batch from per-message costs."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    wanted = {"hub_messages_consumed_total": "consumed",
              "hub_handler_latency_seconds_count": "batches",
              "hub_handler_latency_seconds_sum": "handling_s",
              "hub_outbox_published_total": "outbox_published"}
    found = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            found[wanted[name]] += float(line.rsplit(" ", 1)[1])
    return found


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        os.kill(pid, sig)


async def measure(bootstrap: str, processes: int, n: int, logs: Path,
                  mode: str = "stream") -> dict[str, Any]:
    """One run. ``stream``: the messages are published while the K processes handle them
    (each process sees 1/K of the publisher's rate, so its batches are smaller);
    ``backlog``: the K processes are stopped (SIGSTOP) while the messages are published
    and go on (SIGCONT) with the whole stream waiting: every process handles full
    batches, as at saturation."""
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
    publish_s = 0.0
    try:
        for hub in hubs:
            hub.start()
        group = f"{group_prefix}.ledger"
        await wait_for(lambda: group_is_stable_with(bootstrap, group, processes),
                       timeout_s=180, what=f"{processes} processes in the group")
        pids = [hub.proc.pid for hub in hubs if hub.proc is not None]
        # Each process's CPU while idle in the group (consumer polls, relay and retry
        # polls), to tell that cost from the per-message one.
        idle_at, idle_cpu = time.monotonic(), sum(cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(IDLE_S)
        load_before = os.getloadavg()[0]
        if mode == "backlog":
            signal_all(pids, signal.SIGSTOP)
            t0 = time.monotonic()
            await publish(bootstrap, t_in.name, messages)
            publish_s = time.monotonic() - t0
        before = total(pids)
        cpu_before = before["cpu_s"]
        started = time.monotonic()
        idle_rate = (cpu_before - idle_cpu) / (started - idle_at - publish_s) / processes
        if mode == "backlog":
            signal_all(pids, signal.SIGCONT)
        else:
            await publish(bootstrap, t_in.name, messages)
        stamps, records = await collect(bootstrap, t_out.name, n, 600)
        after = total(pids)
        cpu = after["cpu_s"] - cpu_before
        busy_s = time.monotonic() - started
        load_after = os.getloadavg()[0]
        counters = [await asyncio.to_thread(scrape, hub.port) for hub in hubs]
        # Still one group of K, no member dropped out while stopped (a rebalance would
        # have been paid inside the measured span).
        stable = await group_is_stable_with(bootstrap, group, processes)
        booked = ledger.workers(engine)
    finally:
        for hub in hubs:
            if hub.proc is not None and hub.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(hub.proc.pid, signal.SIGCONT)
            hub.terminate()
        engine.dispose()
        await asyncio.to_thread(drop_database, db_url)
    batches = sum(c["batches"] for c in counters)
    return {"mode": mode, "processes": processes, "messages": n,
            "cpu_ms_per_message": round(1000 * cpu / n, 4),
            "idle_cpu_per_process": round(idle_rate, 4),
            "cpu_ms_per_message_less_idle": round(
                1000 * (cpu - idle_rate * processes * busy_s) / n, 4),
            "seconds": round(busy_s, 2),
            "messages_per_s": round(steady_rate(stamps)),
            "booked_per_process": sorted(booked.values(), reverse=True),
            "batches": int(batches),
            "mean_batch": round(sum(c["consumed"] for c in counters) / max(batches, 1), 1),
            "handling_ms_per_message": round(
                1000 * sum(c["handling_s"] for c in counters) / n, 4),
            "outbox_published": int(sum(c["outbox_published"] for c in counters)),
            "output_records": records,
            "run_queue_ms_per_message": round(
                1000 * (after["run_queue_s"] - before["run_queue_s"]) / n, 4),
            "involuntary_switches_per_message": round(
                (after["involuntary_switches"] - before["involuntary_switches"]) / n, 3),
            "voluntary_switches_per_message": round(
                (after["voluntary_switches"] - before["voluntary_switches"]) / n, 3),
            "publish_s": round(publish_s, 2),
            "group_stable_after": stable,
            "load_average": [round(load_before, 2), round(load_after, 2)]}


def summarise(runs: dict[int, list[dict[str, Any]]], first: int) -> dict[str, Any]:
    base = statistics.median(r["cpu_ms_per_message"] for r in runs[first])
    base_net = statistics.median(r["cpu_ms_per_message_less_idle"] for r in runs[first])
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
            "mean_batch_median": round(statistics.median(r["mean_batch"] for r in rs), 1),
            "cpu_vs_one_process": round(cpu / base, 3),
            "cpu_less_idle_vs_one_process": round(net / base_net, 3),
            "within_target": cpu / base <= 1 + TARGET,
            "runs": rs}
    return summary


async def main(args: argparse.Namespace) -> dict[str, Any]:
    modes = ["stream", "backlog"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory() as tmp:
        cluster = None
        bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP")
        if not bootstrap:
            cluster = await asyncio.to_thread(start_cluster, Path(tmp) / "cluster")
            bootstrap = cluster.bootstrap
        logs = Path(tmp) / "logs"
        logs.mkdir()
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {
            m: {k: [] for k in args.processes} for m in modes}
        try:
            for round_no in range(1, args.rounds + 1):
                order = args.processes if round_no % 2 else list(reversed(args.processes))
                for k in order:
                    for mode in modes:
                        figures = await measure(bootstrap, k, args.n, logs, mode)
                        runs[mode][k].append(figures)
                        print(f"round {round_no}: {figures}", flush=True)
        finally:
            if cluster is not None:
                await asyncio.to_thread(cluster.script, "wipe")
    return {
        "benchmark": "delivery pipeline scaled out: K hub run processes in one group",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "kafka": "Apache Kafka 4.1.1, 3-broker KRaft cluster on loopback (deploy/kafka.sh "
                 "--brokers 3); topics of 6 partitions, 3 replicas, min.insync.replicas 2",
        "database": "PostgreSQL on loopback, fsync on",
        "target": f"CPU per message within {TARGET:.0%} of one process's",
        "target_judged_on": "backlog (saturation): see the module's docstring",
        "results": {m: summarise(runs[m], args.processes[0]) for m in modes},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--mode", choices=["stream", "backlog", "both"], default="both")
    parser.add_argument("--output", type=Path, default=RESULTS / "scaleout.json")
    cli = parser.parse_args()
    outcome = asyncio.run(main(cli))
    cli.output.write_text(json.dumps(outcome, indent=2))
    for mode, per_k in outcome["results"].items():
        for k, figures in per_k.items():
            print(f"{mode}, {k} process(es): {figures['cpu_ms_per_message_median']} ms CPU "
                  f"per message, batches of {figures['mean_batch_median']} "
                  f"({figures['cpu_vs_one_process']:.2f}x one process; less idle "
                  f"{figures['cpu_ms_per_message_less_idle_median']} ms, "
                  f"{figures['cpu_less_idle_vs_one_process']:.2f}x), "
                  f"{figures['messages_per_s_median']} messages/s")
