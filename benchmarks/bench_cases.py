"""Benchmark: complete procurement cases per second on one hub process (target 10/s).

One hub process (a child running what ``hub run`` runs: the default wiring, every
pipeline, connector and job, the gateway, the staff API, the city's signer on a SoftHSM2
token) on a fresh PostgreSQL database and its own Kafka broker, with the reference peers
(hub/peers.py: SMTP, the ERP's SOAP service, D・Sure, the RFC 3161 TSA ...) and the
contract jobs every ``--job-interval`` seconds. The driver plays N cases with
hub.sample's :class:`~hub.sample.driver.CaseRun`, at most ``--concurrency`` in flight,
each step as in ``hub demo``: 利用者登録 with the card agent, 案件情報 / 開札 / 申出書,
契約保証 on D・Sure checked (SUR-2), the contract set, the contractor's agreement and
PAdES B-T signature (CON-2, CON-5), the city's agreement and B-LT signature (CON-7),
the ERP 契約登録, 前払金保証 and the advance-payment registration in the ERP (SUR-6).
The human steps are automated; the contractor's card is a software card with a key the
test PKI issued (the card itself is bench_card's subject).

Measured: cases/s (completed cases over the span from the first case's first step to
the last case's advance-payment registration, and over the middle 80 % of completions),
per-case latency p50/p95/p99 (first step to the advance-payment registration), the time
of each stage, the hub's peak RSS (VmHWM), and where the CPU went while the cases ran:
the hub, the driver (the contractor's PAdES signing with pyHanko is the driver's, as it
is the card agent's on the contractor's PC), the peers, and how busy the machine was.
Bounded: N cases, ``--timeout`` overall, each step ``--step-timeout``; it stops by
itself. ``--profile cprofile`` runs the hub under cProfile (the event-loop thread, with
``asyncio.to_thread`` calls inline, as in bench_registration); ``--profile sample``
samples every thread's stack (the HTTP routes run in worker threads), which also counts
threads blocked in C calls (psycopg, sockets), so its shares are of time, not of CPU.

Kafka is this run's own broker (deploy/kafka.sh on a free port in the run directory):
on the shared broker any other hub consuming ``proc.*`` (an e2e test, a demo) answers
this run's commands from its own database. ``--kafka host:port`` uses an existing one;
the hub's consumer groups then start at the topics' end. The reference peers listen on
their fixed ports (hub/peers.py), so ``hub demo`` cannot run at the same time.

    .venv/bin/python -m benchmarks.bench_cases [--n 200] [--concurrency 30]
        [--profile cprofile|sample]

Results: benchmarks/results/cases.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks._cases_parts import (
    TARGET,
    cpu_seconds,
    free_port,
    machine_busy,
    peak_rss_kib,
    postgres_cpu_seconds,
    summarise,
    what_bounds,
)
from benchmarks._database import drop_database, fresh_database
from hub.sample.case import SampleCase

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# -- the hub (child process) ----------------------------------------------------------------

def child(mode: str, out_path: str) -> None:
    """``hub run`` with the default wiring, its consumer groups started at the topics' end;
    ``mode`` 'cprofile' or 'sample' profiles it into ``out_path``."""
    from benchmarks._cases_parts import start_groups_at_end
    from hub.bootstrap import default_wiring
    from hub.logs import setup_logging
    from hub.runtime import Hub
    from hub.settings import load_settings

    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    wiring = default_wiring(settings)
    groups = {f"{settings.kafka.group_prefix}.{spec.name}": [t.name for t in spec.topics]
              for spec in wiring.consumers}
    asyncio.run(start_groups_at_end(settings.kafka.bootstrap_servers, groups))
    hub = Hub(settings, wiring.consumers, engine=wiring.engine, jobs=wiring.jobs,
              http_routers=wiring.routers, publisher=wiring.publisher, closers=wiring.closers)
    if mode == "sample":
        from benchmarks._cases_profile import Sampler

        sampler = Sampler()
        sampler.start()
        asyncio.run(hub.run_until_signalled())
        sampler.stop()
        Path(out_path).write_text(json.dumps(sampler.summary(), indent=1))
    elif mode == "cprofile":
        import cProfile

        async def inline(func: Any, /, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        # cProfile sees one thread: asyncio.to_thread calls run inline so their time shows
        # (the HTTP routes' worker threads stay unseen: --profile sample sees them).
        asyncio.to_thread = inline
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(hub.run_until_signalled())
        profiler.disable()
        profiler.dump_stats(out_path)
    else:
        asyncio.run(hub.run_until_signalled())


# -- the driver -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchCase(SampleCase):
    """A sample case whose company is its own: each its 商号 and 法人番号, so that REG-11
    does not hold the registrations back as one company's re-issued cards."""

    def registration_fields(self) -> dict[str, Any]:
        return {**super().registration_fields(), "trade_name": self.trade_name}


class Bench:
    def __init__(self, args: argparse.Namespace, run_dir: Path, db_url: str) -> None:
        self.args, self.run_dir, self.db_url = args, run_dir, db_url
        self.kafka = args.kafka or f"127.0.0.1:{free_port()}"
        self.port = free_port()
        self.staff_token = secrets.token_urlsafe(24)
        self.timings: list[dict[str, float]] = []
        self.failures: list[str] = []
        self.started = 0

    def env(self) -> dict[str, str]:
        digest = hashlib.sha256(self.staff_token.encode()).hexdigest()
        return {**os.environ, "PYTHONPATH": str(ROOT), "HUB_RUN_DIR": str(self.run_dir),
                "HUB_DATABASE_URL": self.db_url, "HUB_HTTP_PORT": str(self.port),
                "HUB_KAFKA__BOOTSTRAP_SERVERS": self.kafka,
                "HUB_KAFKA__GROUP_PREFIX": f"bench-cases-{uuid.uuid4().hex[:8]}",
                "HUB_CONTRACT__JOB_INTERVAL_S": str(self.args.job_interval),
                "HUB_STAFF__TOKEN_SHA256": json.dumps([digest]),
                "HUB_MAIL_DOCUMENTS_DIR": str(self.run_dir / "documents"),
                "HUB_LOG_LEVEL": "WARNING", "HUB_LOG_FORMAT": "text",
                # every simulated contractor calls from 127.0.0.1: one client to EDGE-2
                "HUB_HTTP__RATE_PER_MINUTE": "1000000", "HUB_HTTP__RATE_BURST": "100000"}

    def broker(self, action: str) -> None:
        """This run's own Kafka broker (deploy/kafka.sh in the run directory): other hubs on
        the shared broker read the same ``proc.*`` topics and would answer for this one."""
        env = {**os.environ, "HUB_RUN_DIR": str(self.run_dir),
               "HUB_KAFKA_PORT": self.kafka.rsplit(":", 1)[1],
               "HUB_KAFKA_CONTROLLER_PORT": str(free_port())}
        subprocess.run(["bash", str(ROOT / "deploy" / "kafka.sh"), action], env=env,
                       check=True, stdout=subprocess.DEVNULL)

    async def wait_ready(self, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"the hub exited ({proc.returncode}); see "
                                       f"{self.run_dir / 'hub.log'}")
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code \
                            == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError("the hub was not ready in time")

    async def one_case(self, stage: Any, feed: Any, creds: Any) -> None:
        from benchmarks._cases_parts import FedTimeline, SoftBackend
        from hub.sample.driver import CaseRun
        from hub.settings import KafkaSettings
        from schemas.surety import SuretyProduct
        from tests.support.registration import corporate_number

        self.started += 1
        case = BenchCase.new(trade_name=f"北東{self.started}組株式会社",
                             corporate_number=corporate_number(self.started))
        timeline = FedTimeline(KafkaSettings(bootstrap_servers=self.kafka), set(),
                                echo=None)
        run = CaseRun(stage, case, timeline, backend=SoftBackend(creds), card=creds,
                      pin="000000", say=None, timeout_s=self.args.step_timeout)
        feed.follow(timeline)
        steps = (("register", run.register),
                 ("open_case", run.open_case),
                 ("performance_surety", lambda: run.surety(SuretyProduct.PERFORMANCE)),
                 ("contract_set", run.contract_set),
                 ("contractor_agrees", run.contractor_agrees),
                 ("contractor_signs", run.contractor_signs),
                 ("city_signs", run.city_signs),
                 ("erp_contract", lambda: run.registered_in_erp("contract")),
                 ("advance_surety", lambda: run.surety(SuretyProduct.ADVANCE_PAYMENT)),
                 ("erp_advance_payment", lambda: run.registered_in_erp("advance-payment")))
        timing: dict[str, float] = {"start": time.monotonic()}
        step = ""
        try:
            for step, call in steps:
                began = time.monotonic()
                await call()
                timing[step] = time.monotonic() - began
            timing["end"] = time.monotonic()
            self.timings.append(timing)
        except Exception as exc:  # one case's failure is counted, the others go on
            self.failures.append(f"{case.case_id} at {step}: {type(exc).__name__}: {exc}"[:1500])
        finally:
            feed.forget(timeline)
            await asyncio.to_thread(run.close)

    async def drive(self) -> dict[str, Any]:
        from benchmarks._cases_parts import CaseFeed, KafkaPublisher
        from connectors.dsure.peer import LOCAL_ISSUER_TOKEN
        from connectors.dsure.settings import DSureSettings
        from connectors.tsa import TsaSettings
        from devkit.pki import ensure_pki
        from hub.db import create_db_engine
        from hub.sample.driver import Stage

        args = self.args
        pki = ensure_pki(self.run_dir / "pki")
        started = time.monotonic()
        cards = [pki.issue_card("北東 次郎", "北東市中央町2丁目3番4号",
                                random.randint(10**6, 10**9)) for _ in range(args.n)]
        print(f"{args.n} IC-card certificates issued in {time.monotonic() - started:.1f} s",
              flush=True)
        engine = create_db_engine(self.db_url)
        publisher, feed = KafkaPublisher(self.kafka), CaseFeed(self.kafka)
        await publisher.start()
        await feed.start()
        stage = Stage(hub_url=f"http://127.0.0.1:{self.port}", engine=engine,
                      publisher=publisher, staff_token=self.staff_token,
                      dsure_url=DSureSettings().base_url, dsure_issuer_token=LOCAL_ISSUER_TOKEN,
                      tsa_url=TsaSettings().url, pki=pki,
                      mail_spool=self.run_dir / "peers" / "mail")  # links, codes (CON-3)
        gate = asyncio.Semaphore(args.concurrency)

        async def bounded(creds: Any) -> None:
            async with gate:
                await self.one_case(stage, feed, creds)

        try:
            tasks = [asyncio.create_task(bounded(c)) for c in cards]
            _, pending = await asyncio.wait(tasks, timeout=args.timeout)
            for task in pending:
                task.cancel()
            if pending:
                self.failures.append(f"{len(pending)} cases unfinished after {args.timeout} s")
                await asyncio.wait(pending, timeout=30)
        finally:
            await feed.stop()
            await publisher.stop()
            engine.dispose()
        return summarise(self.timings, self.failures, args.n)

    async def run(self) -> dict[str, Any]:
        from devkit.pki import ensure_pki
        from hub.peers import LocalPeers
        from hub.settings import KafkaSettings
        from hub.topics import apply_topics

        ensure_pki(self.run_dir / "pki")  # before the TSA peer, which signs with it
        os.environ["HUB_RUN_DIR"] = str(self.run_dir)
        peers = LocalPeers(self.run_dir / "peers", self.run_dir / "pki")
        proc: subprocess.Popen[bytes] | None = None
        try:
            if not self.args.kafka:
                await asyncio.to_thread(self.broker, "start")
            peers.start()
            await apply_topics(KafkaSettings(bootstrap_servers=self.kafka))
            prof = str(self.run_dir / f"hub.{self.args.profile}") if self.args.profile else ""
            log = (self.run_dir / "hub.log").open("ab")
            proc = subprocess.Popen(  # noqa: ASYNC220 -- once per run
                [sys.executable, "-m", "benchmarks.bench_cases", "--child",
                 self.args.profile, prof],
                env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            await self.wait_ready(proc)
            print(f"hub ready (pid {proc.pid}); {self.args.n} cases, "
                  f"{self.args.concurrency} in flight", flush=True)
            peer_pids = [p.pid for _, p in peers._procs]  # the peers own CPU, for the split
            broker = self.run_dir / "kafka" / "broker.pid"
            others = {"peers": lambda: sum(map(cpu_seconds, peer_pids)),
                      "postgres": postgres_cpu_seconds}
            if broker.exists():
                broker_pid = int(broker.read_text())
                others["kafka"] = lambda: cpu_seconds(broker_pid)
            before = (cpu_seconds(proc.pid), time.process_time(), machine_busy(),
                      {k: f() for k, f in others.items()})
            out = await self.drive()
            busy, total = (a - b for a, b in zip(machine_busy(), before[2], strict=True))
            out["cpu_s"] = {"hub": round(cpu_seconds(proc.pid) - before[0], 1),
                            "driver": round(time.process_time() - before[1], 1),
                            **{k: round(f() - before[3][k], 1) for k, f in others.items()},
                            "machine_busy_pct": round(100 * busy / max(total, 1e-9), 1)}
            out["hub_peak_rss_mib"] = round(peak_rss_kib(proc.pid) / 1024, 1)
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            peers.stop()
            if not self.args.kafka:
                await asyncio.to_thread(self.broker, "wipe")
        if self.args.profile == "cprofile" and (self.run_dir / "hub.cprofile").exists():
            from benchmarks._cases_profile import profile_summary

            out["profile"] = profile_summary(self.run_dir / "hub.cprofile")
        elif self.args.profile == "sample" and (self.run_dir / "hub.sample").exists():
            out["profile"] = json.loads((self.run_dir / "hub.sample").read_text())
        return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=2 * args.concurrency + 8))
    db_url = fresh_database()
    keep = os.environ.get("BENCH_KEEP_DIR")  # the hub's log and run directory, for a look
    with tempfile.TemporaryDirectory(prefix="bench-cases-") as tmp:
        run_dir = Path(keep or tmp)
        run_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 -- once, before the run
        try:
            run = await Bench(args, run_dir, db_url).run()
        finally:
            if os.environ.get("BENCH_KEEP_DB"):
                print(f"database kept: {db_url}")
            else:
                drop_database(db_url)
    return {
        "benchmark": "complete cases per second on one hub process (human steps automated)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "note": "driver (card agent, PAdES B-T signing), hub, peers, Kafka and "
                            "PostgreSQL share these cores"},
        "setup": {"hub": "one process, default wiring (hub run), PostgreSQL on loopback",
                  "kafka": "Apache Kafka 4.1.1, single KRaft node on loopback",
                  "peers": "hub/peers.py reference peers (SMTP, ERP SOAP, D・Sure, TSA ...)",
                  "card": "software card (key file) instead of PC/SC",
                  "concurrency": args.concurrency, "job_interval_s": args.job_interval,
                  "latency": "first step (資格審査情報 import) to the advance-payment "
                             "registration in the ERP"},
        **run,
        "bounds": what_bounds(run, os.cpu_count() or 1),
        "target_per_s": TARGET,
        "meets_target": not run.get("failures") and run.get("cases_per_s", 0) >= TARGET,
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
        raise SystemExit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--job-interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--step-timeout", type=float, default=180)
    parser.add_argument("--profile", choices=("", "cprofile", "sample"), default="",
                        help="profile the hub: cProfile (main thread) or sampling (all "
                             "threads)")
    parser.add_argument("--kafka", default="", help="an existing broker (host:port) instead "
                        "of this run's own; no other hub may consume its proc.* topics")
    parser.add_argument("--output", type=Path, default=RESULTS / "cases.json")
    cli = parser.parse_args()
    outcome = asyncio.run(main(cli))
    cli.output.parent.mkdir(parents=True, exist_ok=True)
    cli.output.write_text(json.dumps(outcome, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in outcome.items() if k != "profile"}, indent=2,
                     ensure_ascii=False))
    print(f"complete cases: {outcome.get('cases_per_s')} /s (target {TARGET}), "
          f"p99 {outcome.get('latency_s', {}).get('p99')} s")
