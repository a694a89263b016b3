"""Benchmark: what staff identity and the audit trail add to the staff API (target: at most
2 ms at p50).

Two routes, each with and without identity and audit, in the same run on the same fresh
PostgreSQL database, alternating in blocks so both variants see the same machine:

- the archive search ``GET /contracts?counterparty=…`` (CON-7) over ``--cases`` cases of
  two procuring entities;
- the city's agreement ``POST /contracts/{case}/city-agreement`` (CON-2): the rules'
  early decision and the command into the outbox; the case stays contractor-signed (no
  process manager runs), so every request does the same work.

"with": :func:`hub.contract.archive_api.archive_router` as ``hub run`` mounts it, the
caller's RS256 access token verified against a JWKS (:class:`hub.identity.OidcVerifier`;
the keys are fetched once, as from a provider, then cached), the role and entity checks,
the entity filter on the search and the hash-chained audit row (the agreement's in the
transaction of its outbox record). "without": the same work in a bare route (the search
and ``publish_step``), no token, no checks, no audit row. "token_only" (the search):
the token's verification and the entity filter, no audit row. Requests go in-process through
httpx's ASGI transport, one at a time, so the figures are the server side's.

    .venv/bin/python -m benchmarks.bench_staff_api [--requests 1500] [--cases 400]

Results: benchmarks/results/staff_api.json.
"""

# No ``from __future__ import annotations``: FastAPI reads the bare routes' annotations at
# definition time, and they name the router's local session dependency.
import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, FastAPI, Header, Query
from sqlalchemy.engine import Engine
from sqlmodel import Session

from benchmarks._database import drop_database, fresh_database
from hub.contract.archive_api import ContractQuery, archive_router
from hub.contract.review_api import AcceptedOut, publish_step
from hub.db import create_db_engine
from hub.identity import OidcVerifier, Principal, StaffIdentity
from hub.settings import OidcSettings
from pipelines.contract.archive import ContractListItem, search_contracts
from pipelines.contract.state import ContractPolicy
from pipelines.contract.store import load_case, save_case
from schemas.contract import CityAgreed, ContractStatus
from tests.support.staff import case

RESULTS = Path(__file__).resolve().parent / "results" / "staff_api.json"
ISSUER = "https://idp.bench.example/realms/procurement"
APPROVER = "shonin@pref.saitama.example.jp"


def bare_router(engine: Engine, identity: StaffIdentity) -> APIRouter:
    """The same work as the staff routes, without identity, checks or audit; and the search
    with the token's verification and entity filter but no audit row (where the time goes)."""
    router = APIRouter(prefix="/bare")

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    async def caller(authorization: Annotated[str | None, Header()] = None) -> Principal:
        who = identity.known(authorization)
        return who if who is not None else identity.principal(authorization)

    @router.get("/token-only/contracts")
    def token_only(db: Annotated[Session, Depends(session)],
                   who: Annotated[Principal, Depends(caller)],
                   q: Annotated[ContractQuery, Query()]) -> list[ContractListItem]:
        return search_contracts(db, **q.model_dump(), entities=who.entity_filter())

    @router.get("/contracts")
    def contracts(db: Annotated[Session, Depends(session)],
                  q: Annotated[ContractQuery, Query()]) -> list[ContractListItem]:
        return search_contracts(db, **q.model_dump())

    @router.post("/contracts/{case_id}/city-agreement", status_code=202)
    def agree(case_id: str, db: Annotated[Session, Depends(session)]) -> AcceptedOut:
        state = load_case(db, case_id)
        assert state is not None
        return publish_step(engine, state, CityAgreed(case_id=case_id, by=APPROVER),
                            datetime.now(UTC), "bench", policy=ContractPolicy())

    return router


def token_and_verifier() -> tuple[str, OidcVerifier]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = {"keys": [{**jwk, "kid": "bench", "use": "sig", "alg": "RS256"}]}
    http = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks)))
    verifier = OidcVerifier(OidcSettings(issuer=ISSUER, jwks_url=f"{ISSUER}/certs"), http=http)
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": "procurement-hub", "sub": "bench-approver",
                        "typ": "Bearer", "iat": now, "exp": now + 3600, "email": APPROVER,
                        "groups": ["/entities/saitama-pref"],
                        "realm_access": {"roles": ["approver"]}},
                       key, algorithm="RS256", headers={"kid": "bench"})
    return token, verifier


def seed(engine: Engine, cases: int) -> None:
    with Session(engine) as db, db.begin():
        for n in range(cases):
            entity = "saitama-pref" if n % 2 else "kawagoe-city"
            status = ContractStatus.CONTRACTOR_SIGNED if n < 2 else ContractStatus.CONCLUDED
            save_case(db, case(f"B-{n:05d}", entity, APPROVER, status))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"requests": len(ordered), "p50_ms": round(q[49] * 1000, 3),
            "p90_ms": round(q[89] * 1000, 3), "p99_ms": round(q[98] * 1000, 3),
            "requests_per_s": round(len(ordered) / sum(ordered), 1)}


async def measure(client: httpx.AsyncClient, request: Callable[[], Any], n: int,
                  block: int, samples: list[float]) -> None:
    for _ in range(min(block, n - len(samples))):
        started = time.perf_counter()
        answer = await request()
        samples.append(time.perf_counter() - started)
        assert answer.status_code in (200, 202), answer.text


async def run(url: str, requests: int, cases: int) -> dict[str, Any]:
    engine = create_db_engine(url)
    seed(engine, cases)
    token, verifier = token_and_verifier()
    identity = StaffIdentity(oidc=verifier)
    app = FastAPI()
    app.include_router(archive_router(engine, (), identity=identity))
    app.include_router(bare_router(engine, identity))
    auth = {"Authorization": f"Bearer {token}"}
    # the agreement's case is saitama-pref's (odd numbers), as the token's entity
    target = "B-00001"
    search = {"counterparty": "デモ", "limit": 50}
    variants: dict[str, Callable[[httpx.AsyncClient], Callable[[], Any]]] = {
        "search_without": lambda c: lambda: c.get("/bare/contracts", params=search),
        "search_token_only": lambda c: lambda: c.get("/bare/token-only/contracts",
                                                     params=search, headers=auth),
        "search_with": lambda c: lambda: c.get("/contracts", params=search, headers=auth),
        "agreement_without": lambda c: lambda: c.post(f"/bare/contracts/{target}/city-agreement"),
        "agreement_with": lambda c: lambda: c.post(f"/contracts/{target}/city-agreement",
                                                   headers=auth),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.bench") as client:
        calls = {name: make(client) for name, make in variants.items()}
        for call in calls.values():  # warm-up: imports, JWKS fetch, statement caches
            for _ in range(30):
                await call()
        block = 50
        while any(len(s) < requests for s in samples.values()):
            for name, call in calls.items():
                await measure(client, call, requests, block, samples[name])
    engine.dispose()
    out: dict[str, Any] = {name: percentiles(s) for name, s in samples.items()}
    out["search_token_only_added_p50_ms"] = round(
        out["search_token_only"]["p50_ms"] - out["search_without"]["p50_ms"], 3)
    for route in ("search", "agreement"):
        out[f"{route}_added_p50_ms"] = round(
            out[f"{route}_with"]["p50_ms"] - out[f"{route}_without"]["p50_ms"], 3)
        out[f"{route}_added_p99_ms"] = round(
            out[f"{route}_with"]["p99_ms"] - out[f"{route}_without"]["p99_ms"], 3)
    out["jwks_fetches"] = verifier.jwks_fetches
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1500, help="per route and variant")
    parser.add_argument("--cases", type=int, default=400)
    args = parser.parse_args()
    url = fresh_database()
    try:
        figures = asyncio.run(run(url, args.requests, args.cases))
    finally:
        drop_database(url)
    result = {"benchmark": "staff_api", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_1m": round(os.getloadavg()[0], 1)},
              "params": {"requests": args.requests, "cases": args.cases,
                         "database": "postgresql"},
              **figures}
    RESULTS.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
