"""Benchmark: the staff console's pages over a large store (issue 19's target: p95 server
time under 200 ms per page with 100,000 cases and 1,000,000 events in PostgreSQL).

A fresh PostgreSQL database is migrated and loaded with COPY:

- ``--cases`` contract cases (``con_case``, each with its full state as the process
  manager saves it) over eight procuring entities, one of them (川越市, the staff's) a
  quarter of them; 960 contractors, amounts from 100,000 to 1,000,000,000 yen, opened
  over two years, most concluded;
- ``--events`` events, what the console's dashboard and timeline read: the audit trail
  (``hub_audit``: the staff's reads and steps, the review links' views and actions,
  60 %), the answers to registration requests (``gw_outcome``, accepted, rejected with
  rule IDs, held for confirmation, 25 %) and the processing records
  (``hub_processed_message``, some dead letters, 15 %); and 300 held REG-11 confirmations.

Then the console's own router (:func:`hub.console.console_router`, as ``hub run`` mounts
it) is driven in process through httpx's ASGI transport, one request at a time, logged in
through its form as people of the local user store of 川越市: an 承認者 and a 管理者.
Each page is requested ``--requests`` times, in rounds that alternate the pages, and its
server time (request to full response body, the template rendered) reported as p50, p95,
p99 and max:

- ``dashboard`` (承認者) and ``dashboard_admin`` (管理者: also the dead letters);
- the case search: ``search_first_page`` (no filter), ``search_counterparty`` (a 商号
  typed half-width with (株)), ``search_date_range`` (one month of conclusion days),
  ``search_amount_range``, ``search_status`` (a rare status) and ``search_deep_page``
  (the page after the 20,000th case, through the page's ``after`` cursor; skipped when
  the console has no pages);
- ``case_detail``: a different case of the entity each time, its timeline read.

    .venv/bin/python -m benchmarks.bench_console [--cases 100000] [--events 1000000]
        [--requests 200] [--keep] [--url URL] [--out PATH]

``--keep`` leaves the loaded database (its URL is printed); ``--url`` measures one kept
before (migrated to the head first, not loaded again). Results:
benchmarks/results/console.json (``--out`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from fastapi import FastAPI

from benchmarks._database import drop_database, fresh_database
from hub.console import ConsoleConfig, console_router
from hub.contract.archive_api import ArchiveService
from hub.db import create_db_engine
from hub.identity import LocalUsers, staff_identity
from hub.migrations import upgrade
from hub.settings import StaffSettings
from schemas.contract import ContractStatus
from schemas.text import trade_name_key
from tests.support.staff import case

RESULTS = Path(__file__).resolve().parent / "results" / "console.json"
ENTITY = "kawagoe-city"
OTHERS = ("saitama-pref", "tokorozawa-city", "koshigaya-city", "soka-city", "kasukabe-city",
          "ageo-city", "kumagaya-city")
PASSWORD = "bench password for the console"
DAYS = 730

_PLACES = ("北", "南", "東", "西", "中央", "大和", "富士", "朝日", "日本", "関東", "武蔵",
           "秩父", "川越", "入間", "荒川", "利根")
_TRADES = ("建設", "工業", "土木", "設備", "電気", "舗道", "開発", "技研", "造園", "塗装")
_FORMS = ("株式会社", "有限会社", "合同会社")
COMPANIES = [f"{f}{p}{t}" if n % 2 else f"{p}{t}{f}"
             for n, (p, t, f) in enumerate((p, t, f) for p in _PLACES for t in _TRADES
                                           for f in _FORMS)] * 2
COMPANIES = [name if n < len(COMPANIES) // 2 else f"{name}{'第二' if n % 3 else '新'}"
             for n, name in enumerate(COMPANIES)]
"""960 contractors' 商号."""

# status, share: most cases concluded, some under way, a few rejected
_STATUSES = ((ContractStatus.CONCLUDED, 70), (ContractStatus.OPENED, 5),
             (ContractStatus.APPLIED, 5), (ContractStatus.REVIEW, 6),
             (ContractStatus.CONTRACTOR_AGREED, 3), (ContractStatus.CONTRACTOR_SIGNED, 2),
             (ContractStatus.CITY_AGREED, 1), (ContractStatus.SENT_TO_CLOUDSIGN, 5),
             (ContractStatus.REJECTED, 3))
_OUTCOMES = (("registration.card-registered", 50), ("registration.contact-changed", 20),
             ("registration.card-renewed", 10), ("registration.rejected", 17),
             ("registration.needs-confirmation", 3))
_RULES = ("REG-1", "REG-2", "REG-3", "REG-4", "REG-5", "REG-7", "REG-8")
_CONSUMERS = ("registration", "gateway-outcomes", "contract-process", "invoices", "surety",
              "mail", "erp", "citysigner")
_STAFF_ACTIONS = ("console.case", "contracts.search", "contracts.certificate",
                  "contracts.document", "contracts.validation", "contracts.contract-set",
                  "contracts.city-agreement")
_REVIEW_ACTIONS = ("review.view", "review.code-sent", "review.agreed", "review.download")


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def _iso(at: datetime) -> str:
    return at.isoformat()


def _case_rows(n: int, now: datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    template = case("T", ENTITY, "tanto@city.example.jp", ContractStatus.CONCLUDED
                    ).model_dump(mode="json")
    keys = {name: trade_name_key(name) for name in COMPANIES}
    for i in range(n):
        entity = ENTITY if i % 4 == 0 else OTHERS[i % 7]
        status = _weighted(rng, _STATUSES)
        opened = now - timedelta(days=rng.uniform(0, DAYS))
        updated = min(now, opened + timedelta(days=rng.uniform(0, 40)))
        concluded = updated if status is ContractStatus.CONCLUDED else None
        name = COMPANIES[rng.randrange(len(COMPANIES))]
        amount = int(10 ** rng.uniform(5, 9)) // 1000 * 1000
        case_id = f"{entity[:3].upper()}-{opened:%Y}-{i:06d}"
        agreed = {ContractStatus.CONCLUDED: 2, ContractStatus.CITY_AGREED: 2,
                  ContractStatus.CONTRACTOR_AGREED: 1, ContractStatus.CONTRACTOR_SIGNED: 1
                  }.get(status, 0)
        subject = (f"令和{opened.year - 2018}年度 {rng.choice(_PLACES)}地区 道路補修工事 "
                   f"第{i % 97 + 1}号")
        state = {**template, "case_id": case_id, "procuring_entity": entity,
                 "subject": subject, "amount_yen": amount, "contractor_name": name,
                 "contractor_user_id": f"U{i % 99999:05d}", "city_name": entity,
                 "status": status.value, "opened_at": _iso(opened), "updated_at": _iso(updated)}
        if agreed:
            state["contractor_agreed_at"] = _iso(opened + (updated - opened) / 3)
            state["contractor_agreed_by"] = "boss@demo.co.jp"
        if concluded is not None:
            state["city_agreed_at"] = _iso(opened + (updated - opened) * 2 / 3)
            state["concluded_at"] = _iso(concluded)
        yield (case_id, entity, "card", status.value, subject, amount, state["contractor_user_id"],
               name, keys[name], entity, agreed, 2, opened, updated, concluded,
               json.dumps(state, ensure_ascii=False))


def load(url: str, cases: int, events: int, now: datetime) -> dict[str, Any]:
    """COPY the store in; returns what was loaded and how long it took."""
    rng = random.Random(19)
    started = time.perf_counter()
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    audits, outcomes = int(events * 0.60), int(events * 0.25)
    processed = events - audits - outcomes
    case_ids: list[tuple[str, str, datetime, datetime]] = []
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("copy con_case (case_id, procuring_entity, route, status, subject, "
                      "amount_yen, contractor_user_id, contractor_name, contractor_key, "
                      "city_name, agreed, parties, opened_at, updated_at, concluded_at, "
                      "state) from stdin") as copy:
            for row in _case_rows(cases, now, rng):
                copy.write_row(row)
                case_ids.append((row[0], row[1], row[12], row[13]))
        with cur.copy("copy hub_audit (id, at, actor, actor_kind, role, entity, action, "
                      "target, client, outcome, detail, prev_hash, hash) from stdin") as copy:
            rows = []
            for _ in range(audits):
                case_id, entity, opened, updated = case_ids[rng.randrange(len(case_ids))]
                at = opened + (updated - opened) * rng.random()
                if rng.random() < 0.3:
                    rows.append((at, "contractor", "boss@demo.co.jp", "",
                                 rng.choice(_REVIEW_ACTIONS), case_id, entity))
                else:
                    rows.append((at, "person", f"staff{rng.randrange(40)}@{entity}.example.jp",
                                 "approver", rng.choice(_STAFF_ACTIONS), case_id, entity))
            rows.sort(key=lambda r: r[0])
            previous = "0" * 64
            for n, (at, kind, actor, role, action, target, entity) in enumerate(rows, 1):
                digest = hashlib.sha256(f"{n}{at}{actor}{action}{target}{previous}".encode()
                                        ).hexdigest()
                copy.write_row((n, at, actor, kind, role, entity, action, target, "10.0.0.8",
                                "ok", "", previous, digest))
                previous = digest
        cur.execute("select setval(pg_get_serial_sequence('hub_audit', 'id'), %s)", (audits,))
        with cur.copy("copy gw_outcome (request_id, message_type, procuring_entity, payload, "
                      "received_at) from stdin") as copy:
            for i in range(outcomes):
                entity = ENTITY if i % 4 == 0 else OTHERS[i % 7]
                kind = _weighted(rng, _OUTCOMES)
                payload: dict[str, Any] = {"procuring_entity": entity, "network": "saitama",
                                           "domain": "works", "user_id": f"U{i % 99999:05d}"}
                if kind == "registration.rejected":
                    payload["violations"] = [{
                        "rule_id": rule, "message_ja": "資格審査情報と一致しません。",
                        "message_en": "Does not match the qualification record.",
                        "next_step_ja": "窓口に連絡してください。",
                        "next_step_en": "Call the desk."}
                        for rule in rng.sample(_RULES, rng.choice((1, 1, 2)))]
                # denser lately: a quarter of the answers (other entities') in 30 days
                back = rng.uniform(0, 30) if i % 4 == 1 else rng.uniform(0, DAYS)
                copy.write_row((str(uuid.UUID(int=rng.getrandbits(128))), kind, entity,
                                json.dumps(payload, ensure_ascii=False),
                                now - timedelta(days=back)))
        with cur.copy("copy hub_processed_message (consumer, message_id, outcome, "
                      "processed_at) from stdin") as copy:
            for i in range(processed):
                copy.write_row((_CONSUMERS[i % len(_CONSUMERS)],
                                str(uuid.UUID(int=rng.getrandbits(128))),
                                "dead" if rng.random() < 0.02 else "done",
                                now - timedelta(days=rng.uniform(0, 14))))
        with cur.copy("copy reg_pending_confirmation (confirmation_id, issuer, serial, "
                      "command, created_at) from stdin") as copy:
            for i in range(300):
                entity = ENTITY if i % 4 == 0 else OTHERS[i % 7]
                copy.write_row((str(uuid.UUID(int=rng.getrandbits(128))),
                                "OU=CoreCA,O=eJapan2 Tech Center,C=JP", f"{i:08d}",
                                json.dumps({"procuring_entity": entity, "user_id": f"U{i:05d}",
                                            "trade_name": COMPANIES[i % len(COMPANIES)]},
                                           ensure_ascii=False),
                                now - timedelta(hours=rng.uniform(0, 240))))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze")
    return {"cases": cases, "events": {"hub_audit": audits, "gw_outcome": outcomes,
                                       "hub_processed_message": processed},
            "pending_confirmations": 300, "load_s": round(time.perf_counter() - started, 1)}


def percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(sorted(samples), n=100, method="inclusive")
    return {"requests": len(samples), "p50_ms": round(q[49] * 1000, 1),
            "p95_ms": round(q[94] * 1000, 1), "p99_ms": round(q[98] * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1)}


async def login(client: httpx.AsyncClient, username: str) -> None:
    page = await client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text
    answer = await client.post("/console/login", data={
        "csrf": token.group(1), "username": username, "password": PASSWORD,
        "next": "/console/dashboard"})
    assert answer.status_code == 303, answer.text


def _deep_cursor(url: str, depth: int) -> str | None:
    """The ``after`` cursor of the page following the ``depth``-th case of the entity,
    newest first (the console's order), or ``None`` when the console has no pages."""
    try:
        from pipelines.contract.archive import page_cursor  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    engine = create_db_engine(url)
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "select updated_at, case_id from con_case where procuring_entity = :e "
            "order by updated_at desc, case_id limit 1 offset :n"),
            {"e": ENTITY, "n": depth - 1}).one()
    engine.dispose()
    return str(page_cursor(row.updated_at, row.case_id))


async def measure(url: str, requests: int, now: datetime) -> dict[str, Any]:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        mine = [r[0] for r in conn.execute(sa.text(
            "select case_id from con_case where procuring_entity = :e"), {"e": ENTITY})]
    rng = random.Random(7)
    detail_ids = rng.sample(mine, min(len(mine), requests))
    deep = _deep_cursor(url, 20_000)
    month_end = (now - timedelta(days=90)).astimezone(UTC)
    pages: dict[str, Callable[[int], str]] = {
        "dashboard": lambda _: "/console/dashboard",
        "dashboard_admin": lambda _: "/console/dashboard",
        "search_first_page": lambda _: "/console/cases",
        "search_counterparty": lambda _: "/console/cases?counterparty=" + "川越　土木",
        "search_date_range": lambda _: (f"/console/cases?concluded_from="
                                        f"{month_end - timedelta(days=30):%Y-%m-%d}"
                                        f"&concluded_to={month_end:%Y-%m-%d}"),
        "search_amount_range": lambda _: "/console/cases?amount_min=10000000&amount_max=12000000",
        "search_status": lambda _: "/console/cases?status=contractor-signed",
        "case_detail": lambda n: f"/console/cases/{detail_ids[n % len(detail_ids)]}",
    }
    if deep is not None:
        pages["search_deep_page"] = lambda _: "/console/cases?after=" + deep
    with tempfile.TemporaryDirectory() as run_dir:
        users = LocalUsers(Path(run_dir) / "staff-users.json")
        users.add("shonin", PASSWORD, email="shonin@city.kawagoe.example.jp",
                  entities=[ENTITY], roles=["approver"], name="承認 太郎")
        users.add("kanri", PASSWORD, email="kanri@city.kawagoe.example.jp",
                  entities=[ENTITY], roles=["admin"])
        identity = staff_identity(StaffSettings(users_file=users.path), Path(run_dir))
        app = FastAPI()
        app.include_router(console_router(engine, identity, ArchiveService(engine, ()),
                                          ConsoleConfig(Path(run_dir))))
        transport = httpx.ASGITransport(app=app)
        samples: dict[str, list[float]] = {name: [] for name in pages}
        sizes: dict[str, int] = {}
        async with (httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as staff,
                    httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as admin):
            await login(staff, "shonin")
            await login(admin, "kanri")
            for name, path in pages.items():  # warm-up: templates, statement caches
                for n in range(3):
                    answer = await (admin if name == "dashboard_admin" else staff).get(path(n))
                    assert answer.status_code == 200, (name, answer.status_code, answer.text)
                sizes[name] = len(answer.content)
            block = 10
            for start in range(0, requests, block):
                for name, path in pages.items():
                    client = admin if name == "dashboard_admin" else staff
                    for n in range(start, min(start + block, requests)):
                        began = time.perf_counter()
                        answer = await client.get(path(n))
                        samples[name].append(time.perf_counter() - began)
                        assert answer.status_code == 200, (name, answer.text[:500])
    engine.dispose()
    return {name: {**percentiles(s), "bytes": sizes[name]} for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="per page")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database")
    parser.add_argument("--url", help="a database loaded and kept by an earlier run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    now = datetime.now(UTC)
    if args.url:
        url, loaded = args.url, {"reused": True}
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
    else:
        url = fresh_database()
        loaded = load(url, args.cases, args.events, now)
        print(json.dumps(loaded), flush=True)
    try:
        figures = asyncio.run(measure(url, args.requests, now))
    finally:
        if args.keep or args.url:
            print("kept:", url)
        else:
            drop_database(url)
    target_ms = 200.0
    result = {"benchmark": "console", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_1m": round(os.getloadavg()[0], 1)},
              "params": {"requests": args.requests, "cases": args.cases,
                         "events": args.events, "entity_share": 0.25,
                         "database": "postgresql"},
              "loaded": loaded, "target_p95_ms": target_ms,
              "met": all(p["p95_ms"] < target_ms for p in figures.values()),
              "pages": figures}
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                        encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
