"""Chaos: three ``hub run`` processes in one group, complete cases, one SIGKILLed half way.

Real Kafka, a fresh PostgreSQL database, the reference peers (SMTP spool, the ERP's SOAP
service with its own ledger, D・Sure, the TSA), three hub processes on the default wiring
sharing the consumer groups, the leases and the document store. The human steps are
automated as in benchmarks/bench_cases.py (software IC cards). When half of the cases
have the contractor's agreement, the third process is SIGKILLed: its partitions, its
leases and whatever it had in flight go to the other two.

Then, per case, from what the outside world holds: the conclusion once, one city
signature (one signed PDF kept, one recorded signature), one ERP registration of each
kind in the ERP's own ledger, and each mail once (distinct Message-IDs; a copy re-sent
by the killed process carries the same Message-ID, and at most the one in flight).

Kafka is the test's own broker (deploy/kafka.sh on free ports in the test's directory):
other hubs on the shared broker read the same ``proc.*`` topics and would answer this
run's commands from their own databases (a registration refused there, a mail of theirs
sent here). ``HUB_CHAOS_CASES`` sets the number of cases (CI: 8; docs/reliability.md has
a run of 50).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from benchmarks._cases_parts import CaseFeed, FedTimeline, KafkaPublisher, SoftBackend
from devkit.pki import ensure_pki
from hub.contract.models import CitySignatureRow
from hub.db import create_db_engine
from hub.sample.case import SampleCase
from hub.sample.driver import CaseRun
from hub.settings import KafkaSettings
from hub.topics import apply_topics
from pipelines.contract.models import DocumentRow
from schemas.contract import ContractParty
from schemas.surety import SuretyProduct
from tests.e2e.casestack import CONCLUDED, PRODUCER, CaseHub, CaseStack, contractor_addresses
from tests.support.hubproc import ROOT, free_port
from tests.support.registration import corporate_number

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e,
              pytest.mark.slow, pytest.mark.softhsm, pytest.mark.tsa]

CASES = int(os.environ.get("HUB_CHAOS_CASES", "8"))
IN_FLIGHT = 4


@dataclass(frozen=True)
class ChaosCase(SampleCase):
    """Its own company (商号, 法人番号) and people, so REG-11 never holds it back as another
    case's re-issued card, and its mails are its own."""

    def registration_fields(self) -> dict[str, Any]:
        return {**super().registration_fields(), "trade_name": self.trade_name}


def chaos_case(n: int) -> ChaosCase:
    tag = f"{n}-{random.randint(10**5, 10**6)}"
    case = ChaosCase.new(
        trade_name=f"混沌{n}建設株式会社", corporate_number=corporate_number(900 + n),
        authorized=ContractParty(name="北東 一郎", email=f"director-{tag}@hokuto.example.jp"),
        officer=ContractParty(name="北東 三郎", email=f"keiyaku-{tag}@hokuto.example.jp"),
        city_officer=ContractParty(name="契約 花子", email=f"keiyaku-{tag}@city.example.jp"),
        card_email=f"ic-card-{tag}@hokuto.example.jp")
    assert isinstance(case, ChaosCase)
    return case


def spooled(spool: Path) -> list[email.message.EmailMessage]:
    out = []
    for path in sorted(spool.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        out.append(msg)
    return out


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[str]:
    """A Kafka broker of this test's own, its topics applied."""
    port = free_port()
    env = {**os.environ, "HUB_RUN_DIR": str(tmp_path / "broker"),
           "HUB_KAFKA_PORT": str(port), "HUB_KAFKA_CONTROLLER_PORT": str(free_port())}

    def kafka(action: str) -> None:
        subprocess.run(["bash", str(ROOT / "deploy" / "kafka.sh"), action], env=env,
                       check=True, stdout=subprocess.DEVNULL)

    kafka("start")
    try:
        bootstrap = f"127.0.0.1:{port}"
        asyncio.run(apply_topics(KafkaSettings(bootstrap_servers=bootstrap)))
        yield bootstrap
    finally:
        kafka("wipe")


async def test_three_hubs_one_killed_half_way_every_case_once(
        own_kafka: str, pg_url: str, case_home: Path, tmp_path: Path) -> None:
    kafka_bootstrap = own_kafka
    engine = create_db_engine(pg_url)
    stack = CaseStack(kafka_bootstrap, pg_url, engine, case_home, tmp_path)
    hubs: list[CaseHub] = []
    publisher, feed = KafkaPublisher(kafka_bootstrap), CaseFeed(kafka_bootstrap)
    try:
        hubs.append(await stack.start())
        for n in (2, 3):  # two more processes in the same consumer groups, one at a time
            env = {**stack.hub_env, "HUB_HTTP_PORT": str(free_port())}
            hubs.append(CaseHub(env, tmp_path / f"hub{n}.log"))
            await asyncio.to_thread(hubs[-1].start, 240)
        await publisher.start()
        await feed.start()
        stage = dataclasses.replace(stack.stage(), publisher=publisher)
        pki = ensure_pki(case_home / "pki")
        agreed = asyncio.Event()
        progress = {"agreed": 0}
        failures: list[str] = []
        runs: list[CaseRun] = []
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(n: int) -> None:
            case = chaos_case(n)
            creds = await asyncio.to_thread(pki.issue_card, case.holder, case.address,
                                            random.randint(10**6, 10**9))
            timeline = FedTimeline(KafkaSettings(bootstrap_servers=kafka_bootstrap), set(),
                                   echo=None)
            run = CaseRun(stage, case, timeline, backend=SoftBackend(creds), card=creds,
                          pin="000000", say=None, timeout_s=150)
            runs.append(run)
            feed.follow(timeline)
            step = "register"
            try:
                async with gate:
                    await run.register()
                    step = "open_case"
                    await run.open_case()
                    step = "performance_surety"
                    await run.surety(SuretyProduct.PERFORMANCE)
                    step = "contract_set"
                    await run.contract_set()
                    step = "contractor_agrees"
                    await run.contractor_agrees()
                    progress["agreed"] += 1
                    if progress["agreed"] >= CASES // 2:
                        agreed.set()
                    step = "contractor_signs"
                    await run.contractor_signs()
                    step = "city_signs"
                    await run.city_signs()
                    step = "erp_contract"
                    await run.registered_in_erp("contract")
                    step = "advance_surety"
                    await run.surety(SuretyProduct.ADVANCE_PAYMENT)
                    step = "erp_advance_payment"
                    await run.registered_in_erp("advance-payment")
            except Exception as exc:
                failures.append(f"{case.case_id} at {step}: {type(exc).__name__}: {exc}"[:800])
            finally:
                await asyncio.to_thread(run.close)

        async def killer() -> float:
            await agreed.wait()
            await asyncio.to_thread(hubs[2].kill)
            return time.monotonic()

        started = time.monotonic()
        kill = asyncio.create_task(killer())
        await asyncio.gather(*(one(n) for n in range(CASES)))
        took = time.monotonic() - started
        if not kill.done():
            kill.cancel()
        assert not failures, failures
        killed_at = await kill
        print(f"{CASES} cases through three hubs, one SIGKILLed after "
              f"{killed_at - started:.1f} s: {took:.1f} s")

        # -- every effect once, from what the outside world holds ------------------------
        cases = [r.case for r in runs]
        for case in cases:
            kinds = stack.erp_rows(case.case_id)
            assert [k for k, _ in kinds] == ["A", "C"], (case.case_id, kinds)
        with engine.connect() as conn:
            signed = Counter(conn.execute(sa.select(
                CitySignatureRow.__table__.c.case_id)).scalars())  # type: ignore[attr-defined]
            kept = Counter(conn.execute(sa.select(
                DocumentRow.__table__.c.filename)).scalars())  # type: ignore[attr-defined]
        for case in cases:
            assert signed[case.case_id] == 1, case.case_id
            # the contract set and the city-signed PDF: a second signature would be a third
            assert kept[f"{case.case_id}.pdf"] == 2, case.case_id
        for run in runs:
            ours = {e.message_id for _, e in run.timeline.seen
                    if e.type == "econtract.concluded" and e.producer == PRODUCER}
            assert len(ours) == 1, run.case.case_id

        # Only our cases' mails: the mail connector also sends what other hubs on the
        # shared broker ask for on proc.mail.requests (their people, our SMTP peer).
        people = set().union(*(contractor_addresses(c) | {c.city_officer.email.lower()}
                               | {c.card_email.lower()} for c in cases))
        mails = [m for m in spooled(stack.spool)
                 if people & {a.addr_spec.lower() for a in m["To"].addresses}]
        ids = Counter(str(m["Message-ID"]) for m in mails)
        for case in cases:
            own = contractor_addresses(case) | {case.city_officer.email.lower()}
            notices = [m for m in mails if CONCLUDED in str(m["Subject"])
                       and own & {a.addr_spec.lower() for a in m["To"].addresses}]
            assert len({str(m["Message-ID"]) for m in notices}) == 2, case.case_id
        doubled = sum(c - 1 for c in ids.values() if c > 1)
        print(f"mails: {len(ids)} distinct, {doubled} re-sent copies (same Message-ID)")
        twice = [(str(m["Subject"]), str(m["Date"])) for m in mails
                 if ids[str(m["Message-ID"])] > 1]
        assert doubled <= 1, f"more than the mail in flight at the kill was sent twice: {twice}"
    finally:
        await feed.stop()
        await publisher.stop()
        for hub in hubs[1:]:
            hub.stop()
        stack.close()
        engine.dispose()
        for hub in hubs:
            print(hub.log(3000))
