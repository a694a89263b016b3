"""``hub run``: the hub's workers in one process.

Starts, in this order: database migrations, the outbox relay, one FastStream
batch subscriber per consumer, the retry scheduler, scheduled jobs, and the HTTP
server (health, readiness, metrics, gateway). Stops in reverse on SIGTERM or
SIGINT: subscribers drain the batch in flight and commit, the relay sends what
was committed, then the process exits. Several such processes share the work
through Kafka consumer groups; nothing here assumes a single process.

Every background task (the relay, the retry scheduler, each job) is supervised: should
one end by surprise, it is logged at once, ``hub_task_up{task=...}`` drops to 0,
``/healthz`` answers 503 until it runs again, and it is restarted after a backoff
(``hub_task_restarts_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import gc
import io
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from hub import claimcheck, handover, metrics, tracing
from hub.broker import ConsumerRuntime, build_broker
from hub.connector_watch import ConnectorWatch
from hub.consumers import ConsumerSpec
from hub.db import create_db_engine
from hub.http import build_http_app
from hub.http_edge import EdgeLimits
from hub.leases import Lease
from hub.logs import redact_text
from hub.migrations import upgrade
from hub.outbox import OutboxRelay, backoff_delay
from hub.processing import Processor
from hub.publisher import OutboxPublisher
from hub.retention import Retention
from hub.settings import HttpSettings, Settings

__all__ = ["Hub", "ScheduledJob", "settle_garbage_collector"]

log = logging.getLogger(__name__)

HTTP_KEEP_ALIVE_S = 65
"""Idle keep-alive of the hub's HTTP server: longer than clients keep idle connections
(httpx: 5 s), so a client never sends on a connection the server is closing at the same
moment (a request would fail with "Server disconnected", such as the card agent's PUT of
a signed PDF after a long signature). Uvicorn's own default is 5 s."""


@dataclass(frozen=True)
class ScheduledJob:
    """A job run every ``interval_s`` inside ``hub run`` (e.g. the nightly propagation)."""

    name: str
    interval_s: float
    run: Callable[[Engine], Awaitable[Any]]
    lease_ttl_s: float | None = None
    """How long its lease (hub/leases.py) lasts unrenewed: how soon another process takes
    the job over when its holder dies. Default: three intervals, at least 15 s."""

    def lease_ttl(self) -> float:
        return self.lease_ttl_s or max(3 * self.interval_s, LEASE_MIN_TTL_S)


LEASE_MIN_TTL_S = 15.0
"""The shortest lease of a scheduled job: long enough that a busy holder renews in time."""

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two young-generation collections (CPython's default: 700)."""


def settle_garbage_collector() -> None:
    """Once started: what exists now (modules, settings, wiring) lives as long as the
    process, so it is moved out of the collector's way (``gc.freeze``), and young
    collections run every 10,000 allocations instead of 700. A batch of commands allocates
    tens of thousands of short-lived objects; with the defaults the collector would spend
    much of the pipeline's CPU re-scanning the long-lived objects (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


STOP_REPORT_S = 30.0
"""How long stopping may take before the hub logs where each of its tasks waits."""

STOP_DUMP_S = 35.0
"""How long stopping may take before every thread's stack goes to stderr (faulthandler:
also when the event loop itself is blocked and the report above cannot run)."""


def report_tasks(why: str) -> None:
    """Log every asyncio task of the running loop with where it waits (one WARNING)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"-- {task.get_name()}", file=out)
        task.print_stack(limit=12, file=out)
    log.warning("%s; the hub's tasks and where they wait:\n%s", why, out.getvalue())


SUPERVISED_STABLE_S = 60.0
"""A task that ran this long before it stopped is restarted after the shortest backoff."""


def edge_limits(http: HttpSettings) -> EdgeLimits:
    """The edge's limits from ``HUB_HTTP__*`` (hub/http_edge.py)."""
    return EdgeLimits(default_body=http.max_body_bytes, document_body=http.max_document_bytes,
                      webhook_body=http.max_webhook_bytes, rate_per_minute=http.rate_per_minute,
                      rate_burst=http.rate_burst)


def server_tls(http: HttpSettings) -> dict[str, Any]:
    """uvicorn's TLS and proxy arguments: TLS with the configured certificate and key
    (HTTP/1.1: uvicorn speaks no HTTP/2); client addresses from X-Forwarded-For only
    from the configured proxies."""
    found: dict[str, Any] = {
        "proxy_headers": http.forwarded_allow_ips is not None,
        "forwarded_allow_ips": http.forwarded_allow_ips or "",
    }
    if http.tls_cert_file is not None:
        found["ssl_certfile"] = str(http.tls_cert_file)
        found["ssl_keyfile"] = str(http.tls_key_file or http.tls_cert_file)
    return found


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the hub decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Hub:
    def __init__(self, settings: Settings, consumers: Sequence[ConsumerSpec], *,
                 engine: Engine | None = None, jobs: Sequence[ScheduledJob] = (),
                 http_routers: Sequence[Any] = (), serve_http: bool = True,
                 publisher: OutboxPublisher | None = None,
                 closers: Sequence[Callable[[], Any]] = (),
                 connectors: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        claimcheck.configure(settings.kafka.max_record_bytes)
        tracing.configure(settings.tracing, instance=settings.producer_name)
        self.engine = engine or create_db_engine(settings.database_url.get_secret_value())
        self.relay = OutboxRelay(settings, self.engine)
        if publisher is not None:
            publisher.attach(self.relay)
        self._closers = closers
        self.broker = build_broker(settings.kafka)
        self.runtimes = [
            ConsumerRuntime(
                spec,
                Processor(spec, self.engine, settings.retry, producer=settings.producer_name,
                          on_commit=self.relay.dispatch),
                settings.kafka,
                on_committed=self.relay.wake,
            )
            for spec in consumers
        ]
        for rt in self.runtimes:
            rt.subscribe(self.broker)
        self.jobs = list(jobs)
        if settings.retention.enabled:
            retention = Retention(settings.retention, [rt.spec for rt in self.runtimes])
            self.jobs.append(ScheduledJob("retention", settings.retention.interval_s,
                                          retention.run))
        self.connectors = ConnectorWatch(connectors or {})
        self.http: FastAPI = build_http_app(self.readiness, liveness=self.liveness,
                                            connectors=self.connectors.health,
                                            limits=edge_limits(settings.http))
        self.http.state.connectors = self.connectors  # the staff console's dashboard
        for router in http_routers:
            self.http.include_router(router)
        self._serve_http = serve_http
        self._tasks: list[asyncio.Task[Any]] = []
        self._server: uvicorn.Server | None = None
        self._stopped = asyncio.Event()
        self._stopping = False
        self._stop_asked = asyncio.Event()
        self._down: dict[str, str] = {}
        """Supervised tasks not running now, with why they stopped."""
        self._rng = random.Random()

    async def start(self) -> None:
        if self.settings.migrate_on_start:
            await asyncio.to_thread(upgrade, self.engine)
        self._supervise("outbox-relay", self.relay.run)
        handover.attach(self.engine, self.relay)  # HTTP and job commands leave at commit
        await self.broker.start()
        self._supervise("retry-scheduler", self._retry_loop)
        for job in self.jobs:
            self._supervise(f"job-{job.name}", functools.partial(self._job_loop, job))
        if self._serve_http:
            config = uvicorn.Config(self.http, host=self.settings.http_host,
                                    port=self.settings.http_port, log_level="warning",
                                    lifespan="off", timeout_keep_alive=HTTP_KEEP_ALIVE_S,
                                    **server_tls(self.settings.http))
            self._server = _QuietServer(config)
            self._tasks.append(asyncio.create_task(self._server.serve(), name="http"))
        settle_garbage_collector()
        log.info("hub started: %d consumers, kafka %s", len(self.runtimes),
                 self.settings.kafka.bootstrap_servers)

    def _supervise(self, name: str, run: Callable[[], Awaitable[Any]]) -> None:
        self._tasks.append(asyncio.create_task(self._supervised(name, run), name=name))

    async def _supervised(self, name: str, run: Callable[[], Awaitable[Any]]) -> None:
        """Run ``run()`` until the hub stops; restart it, after a backoff, whenever it ends
        otherwise (an exception, or a return before the stop)."""
        up = metrics.TASK_UP.labels(name)
        failures = 0
        while True:
            self._down.pop(name, None)
            up.set(1)
            started = time.monotonic()
            try:
                await run()
            except asyncio.CancelledError:
                up.set(0)
                raise
            except Exception as exc:
                why = f"{type(exc).__name__}: {redact_text(str(exc))[:300]}"
                if self._stopping:
                    up.set(0)
                    raise
                self._down[name] = why
                up.set(0)
                log.exception("task %s stopped (%s); restarting it", name, why)
            else:
                up.set(0)
                if self._stopping:
                    return
                self._down[name] = "returned before the hub stopped"
                log.error("task %s ended before the hub stopped; restarting it", name)
            metrics.TASK_RESTARTS.labels(name).inc()
            failures = 1 if time.monotonic() - started > SUPERVISED_STABLE_S else failures + 1
            delay = backoff_delay(failures, self._rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_asked.wait(), delay)
            if self._stopping:
                return
            log.warning("task %s: restarting (restart %d)", name, failures)

    def liveness(self) -> dict[str, str]:
        """The supervised tasks that are down now, with why (empty when all run)."""
        return dict(self._down)

    async def stop(self) -> None:
        self._stopping = True
        self._stop_asked.set()
        for rt in self.runtimes:
            rt.stopping = True
        for rt in self.runtimes:  # the batch each is handling, while its consumer is open
            try:
                await rt.settle()
            except Exception:
                log.exception("consumer %s: the batch in flight failed", rt.spec.name)
        for rt in self.runtimes:  # its last offset commit, while its consumer is open
            await rt.finish_commit()
        await self.broker.stop()  # drains the batches in flight (graceful_timeout)
        for rt in self.runtimes:
            await rt.drain()
        handover.detach(self.engine)
        await self.relay.stop()
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            if task.get_name() not in ("outbox-relay", "http"):
                task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.relay.finish_deletes()  # the relay may have been down when the stop came
        for close in self._closers:
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("closing %r failed", close)
        for task, result in zip(self._tasks, results, strict=True):
            if isinstance(result, Exception):
                log.error("task %s ended with %r", task.get_name(), result)
        self.connectors.close()
        await asyncio.to_thread(tracing.shutdown)  # the last spans exported
        self._stopped.set()
        log.info("hub stopped")

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("signal received: draining")
        # A stop that takes long says what it waits for: after STOP_REPORT_S, and on every
        # further signal (an operator pressing Ctrl-C again).
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, report_tasks, "another signal while stopping")
        report = loop.call_later(STOP_REPORT_S, report_tasks,
                                 f"still stopping after {STOP_REPORT_S:g} s")
        # Should the event loop itself be blocked, every thread's stack goes to stderr.
        faulthandler.dump_traceback_later(STOP_DUMP_S, exit=False)
        try:
            await self.stop()
        finally:
            report.cancel()
            faulthandler.cancel_dump_traceback_later()

    async def readiness(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        try:
            await asyncio.to_thread(self._ping_db)
            checks["database"] = {"ok": True}
        except Exception as exc:
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        relay = next((t for t in self._tasks if t.get_name() == "outbox-relay"), None)
        relay_up = relay is not None and not relay.done() and "outbox-relay" not in self._down
        waiting = self.relay.unacknowledged_for()
        checks["outbox_relay"] = {
            "ok": relay_up and self.relay.healthy
            and waiting < self.settings.kafka.unready_after_s,
            "unacknowledged_s": round(waiting, 1)}
        for name, why in self._down.items():
            checks[f"task:{name}"] = {"ok": False, "error": why}
        for rt in self.runtimes:
            running = rt.subscriber is not None and rt.subscriber.running
            checks[f"consumer:{rt.spec.name}"] = {"ok": bool(running and rt.healthy)}
        return checks

    def _ping_db(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("select 1"))

    async def _retry_loop(self) -> None:
        interval = self.settings.retry.poll_interval_s
        failures = 0
        while True:
            failed = False
            for rt in self.runtimes:
                try:
                    taken = await rt.processor.run_due_retries()
                    if taken:
                        self.relay.wake()
                except Exception as exc:
                    failed = True
                    if failures == 0:
                        log.exception("retry scheduler: %s failed; trying again", rt.spec.name)
                    else:
                        log.warning("retry scheduler: %s failed again (%s)", rt.spec.name,
                                    type(exc).__name__)
            failures = failures + 1 if failed else 0
            # While the database is down, its tries back off instead of every poll interval.
            await asyncio.sleep(max(interval, backoff_delay(failures, self._rng))
                                if failures else interval)

    async def _job_loop(self, job: ScheduledJob) -> None:
        # One process at a time runs a job: the holder of its lease (hub/leases.py).
        lease = Lease(self.engine, f"job:{job.name}", ttl_s=job.lease_ttl())
        try:
            while True:
                try:
                    if await asyncio.to_thread(lease.acquire):
                        async with lease.renewed():
                            await job.run(self.engine)
                        self.relay.wake()
                except Exception:
                    log.exception("job %s failed; it runs again in %.0f s", job.name,
                                  job.interval_s)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), job.interval_s)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(lease.release))
