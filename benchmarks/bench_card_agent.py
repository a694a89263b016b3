"""Benchmark: a PAdES B-T signature of a 1 MB PDF through the local card agent's service.

What the contractor's browser does, over real HTTP, with the virtual card in pcscd's vpcd
reader, the gateway on PostgreSQL and the reference TSA on loopback, timed in three
parts (the person's reading and typing excluded):

1. ``prepare``: ``POST /operations`` (sign) — the agent fetches the job (1 MB PDF, base64)
   from the hub, checks its hash, reads the PDF with PDFium and draws page 1;
2. ``page``: ``GET /op/<id>`` and the page-1 picture — the confirmation page;
3. ``sign``: ``POST /op/<id>/pin`` — PIN to the card, PAdES B-T (card signature, RFC 3161
   token), ``PUT`` of the signed PDF and the hub's pyHanko validation (CON-5, PIN-2),
   until the signed document is accepted.

``total`` is their sum per signature. Target: p95 under 300 ms.

    flock /tmp/pcsc.lock .venv/bin/python benchmarks/bench_card_agent.py [--count 30]

Needs pcscd with vpcd and PostgreSQL (HUB_TEST_POSTGRES_URL). Results:
benchmarks/results/card_agent.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The entity, system and domain the agent logs in to (as `card-agent serve --entity`).
WHERE = {"procuring_entity": "mlit", "system": "e-contract", "domain": "works"}

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks._database import drop_database, fresh_database  # noqa: E402
from card_agent.client import hub_http_client  # noqa: E402
from card_agent.pcsc import PcscBackend  # noqa: E402
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
from tests.card.pki import shared_pki  # noqa: E402
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
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    pki = shared_pki()
    creds = pki.issue_card(COMPANIES[USER_A][1], COMPANIES[USER_A][2], 9601)
    url = fresh_database()
    engine = create_db_engine(url)
    card = seat(VirtualCard(creds.cert_der, creds.key_path, PIN).start())
    stop = threading.Event()
    try:
        cfg = GatewayConfig(engine=engine, card_roots=pki.trust_roots,
                            signature_roots=pki.trust_roots)
        seed_qualification(engine, USER_A, cfg.now())
        done: set[int] = set()
        worker = threading.Thread(target=lambda: [drive(engine, cfg.now(), done)
                                                  for _ in iter(lambda: stop.wait(0.05), True)],
                                  daemon=True)
        worker.start()
        with ReferenceTsa(pki) as tsa, LoopbackServer(gateway_app(cfg)) as hub:
            http = hub_http_client(hub.url)
            agent = AgentService(backend=PcscBackend(), hub=http, where=WHERE, origins=[hub.url],
                                 chain=creds.chain, reader=READER, port=0,
                                 tsa=AgentTimeStamper(tsa.url, pki.trust_roots))
            agent.start()
            browser = Browser(agent, hub.url)
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
            for i in range(args.count + 1):  # the first is a warm-up
                with cfg.transaction() as db:
                    job_id = create_job(db, network=ENTITY, user_id=USER_A,
                                        procuring_entity=ENTITY, subject=f"bench {i}",
                                        parties=["北東市"], amount_yen=1, document=pdf,
                                        now=cfg.now()).id
                t0 = time.perf_counter()
                op_id = browser.start("sign", job_id=job_id, hub_session=session)
                t1 = time.perf_counter()
                browser.http.get(f"/op/{op_id}").raise_for_status()
                browser.http.get(f"/op/{op_id}/preview.png").raise_for_status()
                t2 = time.perf_counter()
                result = browser.pin(op_id)["result"]
                t3 = time.perf_counter()
                if result["status"] != "signed":
                    raise RuntimeError(f"not accepted: {result}")
                if i:
                    for name, value in (("prepare", t1 - t0), ("page", t2 - t1),
                                        ("sign", t3 - t2), ("total", t3 - t0)):
                        parts[name].append(value)
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
        "through": "card-agent serve over loopback HTTP, virtual card (pcscd + vpcd), "
                   "reference TSA, gateway on PostgreSQL with pyHanko validation",
        **{f"{name}_1mb": _stats(values) for name, values in parts.items()},
        "target_p95_ms": 300,
    }
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
