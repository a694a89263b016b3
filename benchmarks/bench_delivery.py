"""Benchmark: the hub's delivery pipeline against a raw loop and a naive FastStream handler.

One broker, one run, three variants side by side, each consuming topic IN and
producing one record per input to OUT, each in its own process:
  (a) raw aiokafka: getmany -> send -> commit, no database;
  (b) naive FastStream: one message at a time, default settings, publish per message;
  (c) the hub: batch subscriber, idempotency + outbox on PostgreSQL (test ledger pipeline).
Throughput: N inputs preloaded; messages/s from the OUT records' timestamps.
Latency: inputs offered at a fixed rate; per message, OUT record time - send time.
Memory: each variant's peak RSS. CPU: each variant's CPU milliseconds per message while
the preloaded inputs are handled (its /proc figures, from the first outputs to the last).
Results: benchmarks/results/delivery.json (``--output``).
``BENCH_KAFKA=secure`` runs it on the secured broker (TLS + SCRAM), ``cluster`` on a
3-broker cluster (benchmarks/_kafka.py).

    .venv/bin/python -m benchmarks.bench_delivery [--n 20000] [--rate 1000] [--seconds 10]
    .venv/bin/python -m benchmarks.bench_delivery --tracing-rounds 3 [--sample-ratio 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks._cases_parts import cpu_seconds
from benchmarks._database import fresh_database
from benchmarks._kafka import (
    GROUP_PREFIX,
    TOPIC_PREFIX,
    client_kwargs,
    create_topics,
    describe,
    kafka_settings,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# -- the variants (run in a child process) --------------------------------------------------

async def variant_raw(t_in: str, t_out: str, group: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(t_in, **client_kwargs(), group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=500)
    producer = AIOKafkaProducer(**client_kwargs(), acks="all", linger_ms=2,
                                enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=20, max_records=500)
            futures = [await producer.send(t_out, value=r.value, key=r.key, headers=list(r.headers))
                       for recs in batch.values() for r in recs]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def variant_faststream(t_in: str, t_out: str, group: str, stop: asyncio.Event) -> None:
    from faststream.kafka import KafkaBroker

    from hub.broker import _security

    kafka = kafka_settings()
    broker = KafkaBroker(kafka.bootstrap_servers.split(","), security=_security(kafka),
                         log_level=10)

    @broker.subscriber(t_in, group_id=group, auto_offset_reset="earliest")
    async def handle(body: dict[str, Any]) -> None:
        await broker.publish(body, t_out)

    await broker.start()
    await stop.wait()
    await broker.stop()


async def variant_hub(t_in: str, t_out: str, group: str, stop: asyncio.Event) -> None:
    from hub.db import create_db_engine
    from hub.runtime import Hub
    from hub.settings import Settings, TracingSettings
    from tests.support import ledger

    url = os.environ["BENCH_DB_URL"]
    engine = create_db_engine(url)
    # hub-traced: the same, with tracing on, exporting to BENCH_OTLP (a real Jaeger).
    tracing = TracingSettings(enabled=True, otlp_endpoint=os.environ["BENCH_OTLP"],
                              service_name="bench-delivery",
                              sample_ratio=float(os.environ.get("BENCH_SAMPLE_RATIO", "1"))) \
        if os.environ.get("BENCH_OTLP") else TracingSettings()
    settings = Settings(kafka=kafka_settings(group_prefix=group),
                        database_url=url, tracing=tracing)  # type: ignore[arg-type]
    ledger.create_tables(engine)
    hub = Hub(settings, [ledger.consumer(t_in.removesuffix(".in"))], engine=engine,
              serve_http=False)
    await hub.start()
    await stop.wait()
    await hub.stop()


VARIANTS = {"raw": variant_raw, "faststream": variant_faststream, "hub": variant_hub,
            "hub-traced": variant_hub}


def child(variant: str, t_in: str, t_out: str, group: str, report: str) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await VARIANTS[variant](t_in, t_out, group, stop)

    asyncio.run(main())
    Path(report).write_text(json.dumps({"peak_rss_mib": round(_peak_kib() / 1024, 1)}))


def _peak_kib() -> int:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss would
    carry the driver's memory over from the fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- the driver -----------------------------------------------------------------------------

def make_message(n: int, variant: str) -> tuple[bytes, bytes, list[tuple[str, bytes]], str]:
    from schemas.envelope import new_envelope
    from schemas.wire import encode
    from tests.support.ledger import LedgerEntryRequested

    env = new_envelope(LedgerEntryRequested(entry_no=n, amount=n), correlation_id=f"c{n % 997}",
                       procuring_entity="saitama-pref", producer="bench")
    key, value, headers = encode(env)
    return key, value, headers, str(env.message_id)


async def produce(topic: str, messages: list[tuple[bytes, bytes, list[tuple[str, bytes]], str]],
                  rate: float | None) -> dict[str, float]:
    """Send; returns message id -> send time (ms since epoch)."""
    producer = AIOKafkaProducer(**client_kwargs(), acks="all", linger_ms=1)
    await producer.start()
    sent: dict[str, float] = {}
    start = time.monotonic()
    try:
        futures = []
        for i, (key, value, headers, mid) in enumerate(messages):
            if rate:
                due = start + i / rate
                if (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
            sent[mid] = time.time() * 1000
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def input_id(record: Any) -> str:
    """The id of the input a record of OUT answers (hub: its causation id)."""
    body = orjson.loads(record.value)
    return str(body.get("causation_id") or body["message_id"])


async def collect(topic: str, expect: int, timeout_s: float, group: str,
                  cpu: dict[str, float] | None = None, pid: int | None = None) -> list[Any]:
    """The outputs, one per input. With ``pid`` and ``cpu``: that process's CPU seconds
    per output from the first outputs read to the last (``cpu["per_message"]``)."""
    consumer = AIOKafkaConsumer(topic, **client_kwargs(), group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True)
    await consumer.start()
    out: list[Any] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    first: tuple[float, int] | None = None
    try:
        while len(seen) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            if seen and first is None and pid is not None:
                first = cpu_seconds(pid), len(seen)
            for recs in batch.values():
                for r in recs:
                    mid = input_id(r)
                    if mid not in seen:
                        seen.add(mid)
                        out.append(r)
        if first is not None and cpu is not None and pid is not None:
            cpu["per_message"] = (cpu_seconds(pid) - first[0]) / max(1, expect - first[1])
    finally:
        await consumer.stop()
    if len(seen) < expect:
        raise RuntimeError(f"only {len(seen)} of {expect} outputs within {timeout_s} s")
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def run_variant(variant: str, n: int, rate: float, seconds: float,
                      otlp: str | None = None, sample_ratio: float = 1.0) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    t_in, t_out = f"{TOPIC_PREFIX}.{tag}.in", f"{TOPIC_PREFIX}.{tag}.out"
    await create_topics([t_in, t_out])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BENCH_OTLP", None)
    if variant in ("hub", "hub-traced"):
        env["BENCH_DB_URL"] = fresh_database()
    if variant == "hub-traced":
        env["BENCH_OTLP"] = otlp or ""
        env["BENCH_SAMPLE_RATIO"] = str(sample_ratio)
    preload = [make_message(i, variant) for i in range(n)]
    await produce(t_in, preload, None)
    report = RESULTS / f".{variant}-{tag}.json"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_delivery", "--child",  # noqa: ASYNC220
                             variant, t_in, t_out, f"{GROUP_PREFIX}-{tag}", str(report)], env=env,
                            cwd=ROOT)
    try:
        cpu: dict[str, float] = {}
        outs = await collect(t_out, n, 600, f"{GROUP_PREFIX}-collect-{tag}", cpu, proc.pid)
        stamps = sorted(r.timestamp for r in outs)
        span_s = max(1e-3, (stamps[-1] - stamps[0]) / 1000)
        throughput = (n - 1) / span_s
        offered = [make_message(n + i, variant) for i in range(int(rate * seconds))]
        collector = asyncio.create_task(collect(t_out, n + len(offered), 300,
                                                f"{GROUP_PREFIX}-lat-{tag}"))
        sent = await produce(t_in, offered, rate)
        latest = await collector
        lat = [r.timestamp - sent[m] for r in latest if (m := input_id(r)) in sent]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    peak = json.loads(report.read_text())["peak_rss_mib"]
    report.unlink()
    return {
        "messages_per_s": round(throughput),
        "throughput_messages": n,
        "latency_offered_per_s": rate,
        "latency_messages": len(lat),
        "latency_p50_ms": pct(lat, 0.50),
        "latency_p99_ms": pct(lat, 0.99),
        "latency_mean_ms": round(statistics.fmean(lat), 1),
        "peak_rss_mib": peak,
        "cpu_ms_per_message": round(1000 * cpu["per_message"], 4) if cpu else None,
    }


async def compare_tracing(args: argparse.Namespace) -> None:
    """The hub with tracing off and on, alternating in one run, spans exported to a real
    Jaeger (deploy/jaeger.sh): benchmarks/results/delivery_tracing_*.json."""
    import tempfile

    from tests.support.jaeger import Jaeger

    RESULTS.mkdir(parents=True, exist_ok=True)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        jaeger = Jaeger(Path(tmp))
        jaeger.start()
        try:
            for r in range(args.tracing_rounds):
                order = ("hub", "hub-traced") if r % 2 == 0 else ("hub-traced", "hub")
                result: dict[str, Any] = {}
                for variant in order:
                    print(f"round {r + 1}: {variant} ...", flush=True)
                    result[variant] = await run_variant(variant, args.n, args.rate,
                                                        args.seconds, jaeger.otlp_endpoint,
                                                        args.sample_ratio)
                    print(variant, result[variant], flush=True)
                rounds.append(result)
            spans = len(jaeger.traces("bench-delivery", limit=10))
        finally:
            jaeger.stop()
    off = [r["hub"]["messages_per_s"] for r in rounds]
    on = [r["hub-traced"]["messages_per_s"] for r in rounds]
    # CPU per message of the hub process: less moved by other work on the machine.
    cpu_off = [r["hub"]["cpu_ms_per_message"] for r in rounds if r["hub"]["cpu_ms_per_message"]]
    cpu_on = [r["hub-traced"]["cpu_ms_per_message"] for r in rounds
              if r["hub-traced"]["cpu_ms_per_message"]]
    out = {
        "benchmark": "delivery, tracing off vs on (alternating, same run)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_1m_at_end": round(os.getloadavg()[0], 1)},
        "exporter": "OTLP/HTTP to Jaeger v1.75.0 on loopback (in-memory storage)",
        "sample_ratio": args.sample_ratio,
        "jaeger_saw_traces": spans > 0,
        "rounds": rounds,
        "off_messages_per_s": off,
        "on_messages_per_s": on,
        "off_median": statistics.median(off),
        "on_median": statistics.median(on),
        "cost_of_tracing_pct": round(100 * (1 - statistics.median(on) / statistics.median(off)),
                                     1),
        "pairs_on_over_off": [round(b / a, 3) for a, b in zip(off, on, strict=True)],
        "cpu_ms_per_message_off": cpu_off,
        "cpu_ms_per_message_on": cpu_on,
        "cpu_added_pct": (round(100 * (statistics.median(cpu_on) / statistics.median(cpu_off)
                                       - 1), 1) if cpu_off and cpu_on else None),
    }
    name = "all_sampled" if args.sample_ratio >= 1 else f"sampled_{args.sample_ratio:g}"
    (RESULTS / f"delivery_tracing_{name}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "rounds"}, indent=2))


async def main(args: argparse.Namespace) -> None:
    if args.tracing_rounds:
        await compare_tracing(args)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for variant in args.variants:
        print(f"running {variant} ...", flush=True)
        results[variant] = await run_variant(variant, args.n, args.rate, args.seconds)
        print(variant, results[variant], flush=True)
    out = {
        "benchmark": "delivery",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "kafka": f"Apache Kafka 4.1.1 on loopback, {describe()}",
        "database_for_hub": "PostgreSQL 15 on loopback, fsync on",
        "results": results,
    }
    if "hub" in results and "faststream" in results:
        out["hub_vs_faststream"] = round(results["hub"]["messages_per_s"]
                                         / results["faststream"]["messages_per_s"], 1)
    args.output.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
        raise SystemExit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--variants", nargs="+", default=["raw", "faststream", "hub"])
    parser.add_argument("--output", type=Path, default=RESULTS / "delivery.json")
    parser.add_argument("--tracing-rounds", type=int, default=0,
                        help="instead: the hub with tracing off and on, alternating, this "
                        "many rounds (results/delivery_tracing_*.json)")
    parser.add_argument("--sample-ratio", type=float, default=1.0,
                        help="HUB_TRACING__SAMPLE_RATIO of the traced hub")
    asyncio.run(main(parser.parse_args()))
