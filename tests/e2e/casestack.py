"""The whole stack of one procurement case for the end-to-end tests (issue 6).

Real Kafka, a fresh PostgreSQL database, the six reference peers of :mod:`hub.peers`
(SMTP with a spool, the ERP's SOAP service with its SQLite ledger, D・Sure, the online
application system, CloudSign, the RFC 3161 TSA) and the hub as a real ``hub run``
process on the default wiring, so a test can SIGKILL it and start it again. The peers
listen on free loopback ports (not :class:`hub.peers.LocalPeers`' fixed ones, which a
local ``hub peers`` or a benchmark may hold); their ``HUB_*`` URLs go to the hub too. The
contractor is the card agent with the virtual IC card in pcscd's vpcd reader.

What the tests then read is what the outside world holds: the ERP peer's own database
and the ``.eml`` files the SMTP peer spooled.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine

from card_agent.pcsc import PcscBackend
from card_agent.virtualcard import READER, VirtualCard, seat
from connectors.dsure.peer import LOCAL_ISSUER_TOKEN
from devkit.pki import ensure_pki
from hub.publisher import OutboxPublisher
from hub.sample.case import SampleCase
from hub.sample.driver import CaseRun, Stage
from hub.sample.timeline import CaseTimeline
from hub.settings import KafkaSettings, Settings
from hub.staff import local_token
from hub.topics import start_new_groups_at_end
from schemas.contract import ContractParty
from schemas.surety import SuretyProduct
from tests.support.hubproc import ROOT, free_port, wait_for

__all__ = [
    "CONCLUDED",
    "REVIEW",
    "CaseHub",
    "CaseStack",
    "Peers",
    "assert_completed_once",
    "case_run",
    "conclude_and_pay",
    "contractor_addresses",
    "fresh_case",
    "steps",
    "timeline_for",
    "with_subject",
]


class Peers:
    """The reference peers as child processes on free ports; ``env`` points a hub at them."""

    def __init__(self, run_dir: Path, pki_dir: Path) -> None:
        self.run_dir = run_dir
        ports = {name: free_port() for name in ("smtp", "erp", "dsure", "app", "cs", "tsa")}
        self.ports = ports
        self.env = {
            "HUB_MAIL_HOST": "127.0.0.1", "HUB_MAIL_PORT": str(ports["smtp"]),
            "HUB_ERP_URL": f"http://127.0.0.1:{ports['erp']}/",
            "HUB_DSURE_BASE_URL": f"http://127.0.0.1:{ports['dsure']}",
            "HUB_APPLICATION_BASE_URL": f"http://127.0.0.1:{ports['app']}",
            "HUB_CLOUDSIGN_BASE_URL": f"http://127.0.0.1:{ports['cs']}",
            "HUB_TSA_URL": f"http://127.0.0.1:{ports['tsa']}/tsa",
        }
        self.commands = {
            "smtp": ["connectors.mail.peer", "--port", str(ports["smtp"]),
                     "--spool", str(run_dir / "mail")],
            "erp": ["connectors.erp.peer", "--port", str(ports["erp"]),
                    "--db", str(run_dir / "erp.sqlite3")],
            "dsure": ["connectors.dsure.peer"],
            "app": ["connectors.application.peer"],
            "cs": ["connectors.cloudsign.peer"],
            "tsa": ["connectors.tsa.peer", "--port", str(ports["tsa"]), "--pki", str(pki_dir)],
        }
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout_s: float = 60) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        for name, args in self.commands.items():
            with (self.run_dir / f"{name}.log").open("ab") as log:
                self._procs.append(subprocess.Popen(
                    [sys.executable, "-m", *args], env=env, cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout_s
        for (name, port), proc in zip(self.ports.items(), self._procs, strict=True):
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    said = (self.run_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the {name} peer is not listening on {port}:\n{said}")
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._procs.clear()


CONSUMERS = ("registration", "surety", "invoices", "contract", "contract.city-signer",
             "gateway-outcomes", "connector.mail", "connector.erp", "connector.dsure",
             "connector.application", "connector.cloudsign")
"""The default wiring's consumer names; a consumer missing here just replays history."""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class CaseHub:
    """``hub run`` (default wiring) as a child process: started, killed, restarted."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["HUB_HTTP_PORT"])
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "run"], env=self.env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub run exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"hub run not ready after {timeout_s:.0f} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit of anything in flight."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]


@dataclass
class CaseStack:
    """One test's stack; ``home`` is the hub's RUN_DIR (PKI, SoftHSM2 token, staff token)."""

    kafka: str
    db_url: str
    engine: Engine
    home: Path
    work: Path
    hub_env: dict[str, str] = field(default_factory=dict)
    peers: Peers | None = None
    hub: CaseHub | None = None

    @property
    def spool(self) -> Path:
        return self.work / "peers" / "mail"

    @property
    def erp_db(self) -> Path:
        return self.work / "peers" / "erp.sqlite3"

    async def start(self, **env: str) -> CaseHub:
        """The peers and a hub process with ``env`` on top of the test settings, its
        consumer groups starting at the topics' ends."""
        assert self.hub is None, "restart the hub with CaseHub.start"
        self.peers = Peers(self.work / "peers", self.home / "pki")
        await asyncio.to_thread(self.peers.start)
        self.hub_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HUB_RUN_DIR": str(self.home),
            "HUB_KAFKA__BOOTSTRAP_SERVERS": self.kafka,
            "HUB_KAFKA__GROUP_PREFIX": f"e2e-{self.work.name}-{secrets.token_hex(4)}",
            "HUB_DATABASE_URL": self.db_url,
            "HUB_HTTP_PORT": str(free_port()),
            "HUB_LOG_FORMAT": "text",
            "HUB_PRODUCER_NAME": PRODUCER,
            "HUB_CONTRACT__JOB_INTERVAL_S": "0.5",
            "HUB_MAIL_DOCUMENTS_DIR": str(self.work / "documents"),
            **self.peers.env,
            **env,
        }
        await start_new_groups_at_end(KafkaSettings(
            bootstrap_servers=self.kafka, group_prefix=self.hub_env["HUB_KAFKA__GROUP_PREFIX"]),
            CONSUMERS)
        self.hub = CaseHub(self.hub_env, self.work / "hub.log")
        await asyncio.to_thread(self.hub.start)
        return self.hub

    def close(self) -> None:
        if self.hub is not None:
            self.hub.stop()
        if self.peers is not None:
            self.peers.stop()

    def stage(self, tsa_maintenance: tuple[str, ...] = ()) -> Stage:
        assert self.hub is not None
        return Stage(hub_url=self.hub.url, engine=self.engine,
                     publisher=OutboxPublisher(self.engine),  # the hub's relay polls it
                     staff_token=local_token(self.home),
                     dsure_url=self.hub_env["HUB_DSURE_BASE_URL"],
                     dsure_issuer_token=LOCAL_ISSUER_TOKEN, tsa_url=self.hub_env["HUB_TSA_URL"],
                     pki=ensure_pki(self.home / "pki"), tsa_maintenance=tsa_maintenance,
                     mail_spool=self.spool)

    def erp_rows(self, case_id: str) -> list[tuple[str, str]]:
        """(kind, business key) of every registration of the case in the ERP's own ledger."""
        with sqlite3.connect(self.erp_db) as db:
            rows = db.execute("SELECT kind, business_key FROM registration WHERE "
                              "contract_number = ? ORDER BY kind", (case_id,)).fetchall()
        return [(str(k), str(b)) for k, b in rows]

    def mails_to(self, addresses: set[str]) -> list[EmailMessage]:
        """Every mail the SMTP peer spooled with one of ``addresses`` among its recipients."""
        found = []
        for path in sorted(self.spool.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            if addresses & {a.addr_spec.lower() for a in msg["To"].addresses}:
                found.append(msg)
        return found


def fresh_case() -> SampleCase:
    """A sample case whose people have addresses of their own, so the spool of a topic
    replayed from its start (a fresh consumer group) never mixes with another case's."""
    tag = secrets.token_hex(4)
    return SampleCase.new(
        authorized=ContractParty(name="北東 一郎", email=f"director-{tag}@hokuto.example.jp"),
        officer=ContractParty(name="北東 三郎", email=f"keiyaku-{tag}@hokuto.example.jp"),
        city_officer=ContractParty(name="契約 花子", email=f"keiyaku-{tag}@city.example.jp"),
        card_email=f"ic-card-{tag}@hokuto.example.jp")


@contextmanager
def case_run(stack: CaseStack, case: SampleCase, timeline: CaseTimeline,
             tsa_maintenance: tuple[str, ...] = ()) -> Iterator[CaseRun]:
    """The case's parties on the stack; the contractor's virtual card seated in vpcd."""
    pin = "".join(secrets.choice("0123456789") for _ in range(6))
    creds = ensure_pki(stack.home / "pki").issue_card(case.holder, case.address,
                                                      random.randint(10**6, 10**9))
    card = seat(VirtualCard(creds.cert_der, creds.key_path, pin).start())
    run = CaseRun(stack.stage(tsa_maintenance), case, timeline, backend=PcscBackend(),
                  card=creds, pin=pin, reader=READER, say=None)
    try:
        yield run
    finally:
        run.close()
        card.stop()


PRODUCER = f"procurement-hub-e2e-{secrets.token_hex(3)}"
"""The producer name of these tests' hub processes (``HUB_PRODUCER_NAME``)."""
FOREIGN = str(Settings.model_fields["producer_name"].default)


@dataclass
class OwnTimeline(CaseTimeline):
    """The case's events from our hub only: a hub that another suite or a benchmark runs
    on the same broker (default producer name, its own consumer groups) also consumes
    the case's commands, and its answers must not count as ours."""

    async def poll(self, timeout_s: float) -> None:
        await super().poll(timeout_s)
        self.seen[:] = [(t, e) for t, e in self.seen if e.producer != FOREIGN]


def timeline_for(kafka: str) -> CaseTimeline:
    return OwnTimeline(KafkaSettings(bootstrap_servers=kafka), set(), echo=None)


REVIEW = "電子契約の確認依頼"
CONCLUDED = "電子契約締結のお知らせ"


def contractor_addresses(case: SampleCase) -> set[str]:
    return {case.authorized.email.lower(), case.officer.email.lower()}


def with_subject(mails: list[EmailMessage], subject: str) -> list[EmailMessage]:
    return [m for m in mails if subject in str(m["Subject"])]


async def conclude_and_pay(run: CaseRun) -> None:
    """From the city's agreement to the ERP advance payment (CON-2, CON-4, SUR-6)."""
    await run.city_signs()
    await run.registered_in_erp("contract")
    await run.surety(SuretyProduct.ADVANCE_PAYMENT)
    await run.registered_in_erp("advance-payment")


async def assert_completed_once(stack: CaseStack, run: CaseRun) -> None:
    """One conclusion, one ERP registration of each kind, one notice per party (CON-4)."""
    case, timeline = run.case, run.timeline
    await wait_for(lambda: len(stack.erp_rows(case.case_id)) >= 2, 30, "two ERP registrations")
    kinds = stack.erp_rows(case.case_id)
    assert [k for k, _ in kinds] == ["A", "C"], kinds
    assert ("C", f"contract-{case.case_id}") in kinds

    def notices() -> list[EmailMessage]:
        return with_subject(stack.mails_to(contractor_addresses(case)
                                           | {case.city_officer.email.lower()}), CONCLUDED)

    await wait_for(lambda: len(notices()) >= 2, 30, "the 締結のお知らせ of both parties")
    await asyncio.sleep(2)  # a doubled mail would come within the connector's batch
    sent = notices()
    assert len({str(m["Message-ID"]) for m in sent}) == len(sent) == 2, [
        (m["Message-ID"], m["To"]) for m in sent]
    to = sorted(frozenset(a.addr_spec.lower() for a in m["To"].addresses) for m in sent)
    assert sorted([frozenset(contractor_addresses(case)),
                   frozenset({case.city_officer.email.lower()})]) == to
    for mail in sent:  # CON-4: the signed PDF under 6 MB is attached
        (pdf,) = [p for p in mail.iter_attachments() if p.get_filename() == f"{case.case_id}.pdf"]
        assert pdf.get_content() == run.outcome.signed_pdf
    await timeline.poll(1.0)
    assert timeline.count("econtract.concluded") == 1
    assert timeline.count("erp.registered", lambda e: e.payload.kind.value == "contract") == 1
    assert timeline.count("erp.registered",
                          lambda e: e.payload.kind.value == "advance-payment") == 1


def steps(timeline: CaseTimeline) -> list[str]:
    """The case's recorded steps as statuses; the 契約保証 completion (SUR-6), which keeps
    the status, as ``surety-completed``."""
    return ["surety-completed" if e.payload.step == "surety.contract-surety-completed"
            else e.payload.status.value
            for _, e in timeline.seen if e.type == "econtract.step-recorded"]
