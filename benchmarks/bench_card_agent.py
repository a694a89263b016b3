"""Benchmark: a PAdES B-T signature of a 1 MB PDF through the local card agent's service.

What the contractor's browser does, over real HTTP, with the virtual card in pcscd's vpcd
reader, the gateway on PostgreSQL and the reference TSA on loopback, timed in three
parts (the person's reading and typing excluded):

1. ``prepare``: ``POST /operations`` (sign) — the agent fetches the job and its 1 MB PDF
   (``application/pdf``) from the hub, checks its hash, reads it with PDFium and draws
   page 1;
2. ``page``: ``GET /op/<id>`` and the page-1 picture — the confirmation page;
3. ``sign``: ``POST /op/<id>/pin`` — PIN to the card, PAdES B-T (card signature, RFC 3161
   token), ``PUT`` of the signed PDF and the hub's pyHanko validation (CON-5, PIN-2),
   until the signed document is accepted.

``total`` is their sum per signature. Target: p95 under 300 ms.

By default the hub (uvicorn with the hub's HTTP app and the gateway,
benchmarks/_gateway_server.py) and the TSA (``python -m connectors.tsa.peer``) run in
their own processes, as a contractor meets them; ``--hub thread`` runs both in this
process, as the first version of this benchmark did. ``stages_ms`` says where the time
goes: the agent's calls, timed here, and the hub's, timed inside the hub's process.

    flock /tmp/bench.lock flock /tmp/pcsc.lock \
        .venv/bin/python benchmarks/bench_card_agent.py [--count 40] [--hub process|thread]

Needs pcscd with vpcd and PostgreSQL (HUB_TEST_POSTGRES_URL). Results:
benchmarks/results/card_agent.json (``--output`` for another file).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The entity, system and domain the agent logs in to (as `card-agent serve --entity`).
WHERE = {"procuring_entity": "mlit", "system": "e-contract", "domain": "works"}

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

import card_agent.serve as agent_serve  # noqa: E402
from benchmarks._database import drop_database, fresh_database  # noqa: E402
from card_agent.client import GatewayClient, hub_http_client  # noqa: E402
from card_agent.pcsc import PcscBackend, PcscSession  # noqa: E402
from card_agent.serve import AgentService  # noqa: E402
from card_agent.tsa import AgentTimeStamper  # noqa: E402
from card_agent.virtualcard import VirtualCard  # noqa: E402
from connectors.tsa.peer import ReferenceTsa  # noqa: E402
from hub.db import create_db_engine  # noqa: E402
from hub.gateway.config import GatewayConfig  # noqa: E402
from hub.gateway.jobs import create_job  # noqa: E402
from tests.card.fixtures import PIN, READER, seat  # noqa: E402
from tests.card.hubside import (  # noqa: E402
    COMPANIES,
    ENTITY,
    PASSWORD,
    USER_A,
    drive,
    gateway_app,
    seed_qualification,
)
from tests.card.pdfs import make_pdf  # noqa: E402
from tests.card.pki import PKI_DIR, shared_pki  # noqa: E402
from tests.card.server import LoopbackServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "card_agent.json"
CONTACT = {"contact_name": "営業部", "postal_code": "123-0000", "address": COMPANIES[USER_A][2],
           "person_name": "日立 次郎", "phone": "044-812-7358",
           "email": "ic-card@example.jp", "email_confirmation": "ic-card@example.jp"}


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"count": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


class Stages:
    """Wall time of the agent's steps, per call, while ``on`` (the measured signatures)."""

    def __init__(self) -> None:
        self.on = False
        self.samples: dict[str, list[float]] = {}

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        stages = self

        if _is_async(original):
            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    stages.note(label, time.perf_counter() - started)

            setattr(owner, name, timed_async)
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stages.note(label, time.perf_counter() - started)

        setattr(owner, name, timed)

    def note(self, label: str, seconds: float) -> None:
        if self.on:
            self.samples.setdefault(label, []).append(seconds)


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function)


def _agent_stages() -> Stages:
    stages = Stages()
    stages.wrap(GatewayClient, "job", "agent: GET job (wire + hub)")
    stages.wrap(GatewayClient, "document", "agent: GET document, hash check (wire + hub)")
    stages.wrap(agent_serve, "read_document", "agent: PDFium read + page-1 PNG")
    stages.wrap(AgentService, "status", "agent: card status for the page")
    stages.wrap(PcscBackend, "open", "agent: card open (PC/SC connect, SELECT)")
    stages.wrap(PcscSession, "verify_pin", "agent: PIN (VERIFY)")
    stages.wrap(PcscSession, "sign_digest", "agent: card signature (PSO)")
    stages.wrap(agent_serve, "sign_pdf", "agent: PAdES B-T (sign_pdf)")
    stages.wrap(AgentTimeStamper, "async_timestamp", "agent: RFC 3161 round trip + check")
    stages.wrap(GatewayClient, "submit_signed", "agent: PUT signed (wire + hub)")
    return stages


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_http(url: str, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{what} did not answer at {url}")


@contextlib.contextmanager
def _process(args: list[str], url: str, what: str) -> Iterator[None]:
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT)
    try:
        _wait_http(url, what, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _hub_and_tsa(mode: str, url: str, engine: Any, cfg: GatewayConfig,
                 stop: threading.Event) -> Iterator[tuple[str, str]]:
    """The hub's and the TSA's URLs: their own processes, or threads of this one."""
    if mode == "process":
        hub_port, tsa_port = _free_port(), _free_port()
        hub_url = f"http://127.0.0.1:{hub_port}"
        with _process(["-m", "benchmarks._gateway_server", url, str(hub_port)],
                      f"{hub_url}/healthz", "the hub"), \
                _process(["-m", "connectors.tsa.peer", "--port", str(tsa_port),
                          "--pki", str(PKI_DIR)], f"http://127.0.0.1:{tsa_port}/", "the TSA"):
            yield hub_url, f"http://127.0.0.1:{tsa_port}/tsa"
        return
    done: set[int] = set()
    worker = threading.Thread(target=lambda: [drive(engine, cfg.now(), done)
                                              for _ in iter(lambda: stop.wait(0.05), True)],
                              daemon=True)
    worker.start()
    with ReferenceTsa(shared_pki()) as tsa, LoopbackServer(gateway_app(cfg)) as hub:
        yield hub.url, tsa.url


class Browser:
    """The page's calls, as its script makes them (paired, with the hub's origin)."""

    def __init__(self, agent: AgentService, hub_url: str) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{agent.port}", timeout=60)
        self.own = {"Origin": f"http://127.0.0.1:{agent.port}"}
        token = self.http.post("/pair", headers={"Origin": hub_url}).json()["token"]
        self.api = {"Origin": hub_url, "Authorization": f"Bearer {token}"}

    def start(self, kind: str, **params: Any) -> str:
        reply = self.http.post("/operations", headers=self.api,
                               json={"kind": kind, "params": params})
        reply.raise_for_status()
        op_id: str = reply.json()["id"]
        return op_id

    def pin(self, op_id: str) -> dict[str, Any]:
        self.http.post(f"/op/{op_id}/pin", data={"pin": PIN}, headers=self.own)
        found: dict[str, Any] = self.http.get(f"/operations/{op_id}", headers=self.api).json()
        if found["status"] != "done":
            raise RuntimeError(f"operation {found}")
        return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--hub", choices=("process", "thread"), default="process",
                        help="the hub and the TSA in their own processes (default) or in "
                             "threads of the benchmark's")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    stages = _agent_stages()
    pki = shared_pki()
    creds = pki.issue_card(COMPANIES[USER_A][1], COMPANIES[USER_A][2], 9601)
    url = fresh_database()
    engine = create_db_engine(url)
    card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    stop = threading.Event()
    hub_stages: dict[str, list[float]] = {}
    try:
        cfg = GatewayConfig(engine=engine, card_roots=pki.trust_roots,
                            signature_roots=pki.trust_roots)
        seed_qualification(engine, USER_A, cfg.now())
        with _hub_and_tsa(args.hub, url, engine, cfg, stop) as (hub_url, tsa_url):
            http = hub_http_client(hub_url)
            agent = AgentService(backend=PcscBackend(), hub=http, where=WHERE, origins=[hub_url],
                                 chain=creds.chain, reader=READER, port=0,
                                 tsa=AgentTimeStamper(tsa_url, pki.trust_roots))
            agent.start()
            browser = Browser(agent, hub_url)
            request_id = browser.pin(browser.start(
                "register", procuring_entity=ENTITY, system="e-contract", domain="works",
                user_id=USER_A, trade_name=COMPANIES[USER_A][0], password=PASSWORD,
                department_name="営業部", representative_contact=CONTACT,
                card_department_contact=CONTACT))["result"]["request_id"]
            deadline = time.monotonic() + 30
            while http.get(f"/gateway/requests/{request_id}").json()["status"] == "pending":
                if time.monotonic() > deadline:
                    raise TimeoutError("registration outcome")
                stop.wait(0.05)
            session = browser.pin(browser.start("login"))["result"]["token"]
            pdf = make_pdf(1_000_000)
            parts: dict[str, list[float]] = {"prepare": [], "page": [], "sign": [],
                                             "total": []}
            hub_before: dict[str, list[float]] = {}
            for i in range(args.count + 1):  # the first is a warm-up
                with cfg.transaction() as db:
                    job_id = create_job(db, network=ENTITY, user_id=USER_A,
                                        procuring_entity=ENTITY, subject=f"bench {i}",
                                        parties=["北東市"], amount_yen=1, document=pdf,
                                        now=cfg.now()).id
                if i == 1 and args.hub == "process":
                    hub_before = http.get("/_bench/stages").json()
                stages.on = i > 0
                t0 = time.perf_counter()
                op_id = browser.start("sign", job_id=job_id, hub_session=session)
                t1 = time.perf_counter()
                browser.http.get(f"/op/{op_id}").raise_for_status()
                browser.http.get(f"/op/{op_id}/preview.png").raise_for_status()
                t2 = time.perf_counter()
                result = browser.pin(op_id)["result"]
                t3 = time.perf_counter()
                stages.on = False
                if result["status"] != "signed":
                    raise RuntimeError(f"not accepted: {result}")
                if i:
                    for name, value in (("prepare", t1 - t0), ("page", t2 - t1),
                                        ("sign", t3 - t2), ("total", t3 - t0)):
                        parts[name].append(value)
            if args.hub == "process":
                hub_stages = {name: values[len(hub_before.get(name, [])):]
                              for name, values in http.get("/_bench/stages").json().items()}
            agent.stop()
            http.close()
    finally:
        stop.set()
        card.stop()
        engine.dispose()
        drop_database(url)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(),
                    "cores": os.cpu_count(), "loadavg_1m_before_after": [load_before,
                                                                          os.getloadavg()[0]]},
        "pdf_bytes": len(pdf),
        "hub": args.hub,
        "through": "card-agent serve over loopback HTTP, virtual card (pcscd + vpcd), "
                   "reference TSA, gateway on PostgreSQL with pyHanko validation"
                   + (", the hub and the TSA in their own processes" if args.hub == "process"
                      else ", the hub and the TSA in threads of the agent's process"),
        **{f"{name}_1mb": _stats(values) for name, values in parts.items()},
        "stages_ms": {name: {k: v for k, v in _stats(values).items() if k != "max_ms"}
                      for name, values in {**stages.samples, **hub_stages}.items() if values},
        "target_p95_ms": 300,
    }
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
