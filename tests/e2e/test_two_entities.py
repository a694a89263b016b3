"""Two procuring entities on one hub, end to end through Kafka (issue 18, IAM-3, IAM-4).

One ``hub run`` process (real Kafka, a fresh PostgreSQL database, the reference peers) is
configured for two procuring entities, ``mlit`` and ``kawagoe-city``, each with its own
ERP (a reference SOAP ERP with its own ledger), its own mail sender (a reference SMTP
relay with its own spool, its own From and Reply-To) and its own city signer (its own key in a
SoftHSM2 token), and a staff token for each entity (契約担当, 承認者 and 監査 of that
entity only). The installation's own ERP and SMTP relay run too and must stay untouched.

A case of each entity is carried from 利用者登録 to conclusion and the ERP's 契約登録,
the contractor signing with the virtual IC card over PC/SC. Then:

- each case's registration is in its own entity's ERP ledger only, its review, code and
  conclusion mails in its own relay's spool only, from its own sender with its own
  Reply-To;
- each signed PDF carries the city signature of its own entity's key (its certificate's
  subject, read from the PDF) and validates;
- staff of one entity neither see the other's case in the list nor read, nor agree to,
  it: 403 naming IAM-3;
- the audit trail records every step of each case, the contractor's review-link steps
  included, under the case's own entity, the refused attempts as denied; it verifies.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import io
import os
import random
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlmodel import Session

import pipelines.registration
from card_agent.pcsc import PcscBackend
from card_agent.virtualcard import READER, VirtualCard, seat
from connectors.citysigner.localtoken import create_token, softhsm_module, use_token_directory
from devkit.pki import DevPki, ensure_pki
from hub.contract.models import CitySignatureRow
from hub.sample.case import SampleCase
from hub.sample.driver import CaseRun
from hub.sample.timeline import CaseTimeline
from pipelines.audit import AuditRecord, verify
from tests.e2e.casestack import REVIEW, CaseStack, fresh_case, timeline_for, with_subject
from tests.support.hubproc import ROOT, free_port, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.pcsc, pytest.mark.softhsm, pytest.mark.tsa, pytest.mark.smtp,
              pytest.mark.soap]

A, B = "mlit", "kawagoe-city"
SENDERS = {A: ("keiyaku@mlit.example.go.jp", "国土交通省 契約課"),
           B: ("keiyaku@city.kawagoe.example.jp", "川越市 契約課")}
REPLY_TO = {A: "toiawase@mlit.example.go.jp", B: "keiyaku-toiawase@city.kawagoe.example.jp"}
SIGNERS = {A: "MLIT Test City Signer", B: "Kawagoe Test City Signer"}

KAWAGOE_ECONTRACT = """
[[entity]]
code = "kawagoe-city"
system = "e-contract"
name = "川越市"
network = "kawagoe-econtract"
id_scheme = "user-id"
legal_representative_may_hold_card = true
reissued_card = "renewal"
renewal_allows_holder_change = true
service_hours = ""
weekdays_only = false
closed_on_holidays = false
year_end_closure = false
low_validity_days = 30
auth_max_age_minutes = 30
batch_time = "02:00"
"""
"""Kawagoe's e-contract system, around the clock as MLIT's (WIN-2): the packaged policy
knows Kawagoe's e-bid system only."""


@dataclasses.dataclass
class Entity:
    """One procuring entity's own peers, signer and staff token."""

    code: str
    erp_port: int
    smtp_port: int
    spool: Path
    ledger: Path
    token: str = dataclasses.field(repr=False)
    pin: str = dataclasses.field(repr=False)

    def erp_rows(self, case_id: str) -> list[str]:
        with sqlite3.connect(self.ledger) as db:
            rows = db.execute("SELECT business_key FROM registration WHERE "
                              "contract_number = ?", (case_id,)).fetchall()
        return [str(k) for (k,) in rows]

    def mails(self) -> list[EmailMessage]:
        found = []
        for path in sorted(self.spool.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
        return found


def mails_to(mails: list[EmailMessage], case: SampleCase) -> list[EmailMessage]:
    people = {case.authorized.email.lower(), case.officer.email.lower(),
              case.city_officer.email.lower()}
    return [m for m in mails if people & {a.addr_spec.lower() for a in m["To"].addresses}]


def ledger_rows(path: Path, case_id: str) -> list[str]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [str(k) for (k,) in db.execute(
            "SELECT business_key FROM registration WHERE contract_number = ?", (case_id,))]


@contextmanager
def peers(entities: list[Entity], log_dir: Path) -> Iterator[list[int]]:
    """Each entity's ERP and SMTP relay as child processes on their own ports (yields the
    ports to wait for)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    try:
        for e in entities:
            for name, args in (("erp", ["connectors.erp.peer", "--port", str(e.erp_port),
                                        "--db", str(e.ledger)]),
                               ("smtp", ["connectors.mail.peer", "--port", str(e.smtp_port),
                                         "--spool", str(e.spool)])):
                with (log_dir / f"{e.code}-{name}.log").open("ab") as log:
                    procs.append(subprocess.Popen([sys.executable, "-m", *args], env=env,
                                                  cwd=ROOT, stdout=log,
                                                  stderr=subprocess.STDOUT))
        yield [port for e in entities for port in (e.erp_port, e.smtp_port)]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def signer_tokens(home: Path, pki: DevPki, entities: list[Entity]) -> tuple[str, Path, Path]:
    """Each entity's key and certificate in its own SoftHSM2 token (one token directory for
    the hub process); (module, chain, root). This process's SoftHSM2 is pointed back."""
    before = os.environ.get("SOFTHSM2_CONF")
    directory = home / "entity-signers"
    module = softhsm_module()
    assert module is not None
    try:
        for n, e in enumerate(entities):
            signer = pki.issue_card(SIGNERS[e.code], "東京都千代田区霞が関2-1-3",
                                    random.randint(10**6, 10**9) + n)
            module = create_token(directory, signer, token_label=e.code[:32], key_label="city",
                                  pin=e.pin, so_pin=secrets.token_hex(8))
    finally:
        if before is not None and os.environ.get("SOFTHSM2_CONF") != before:
            use_token_directory(Path(before).parent)
    return module, pki.card_ca.cert_path, pki.root.cert_path


def settings_file(path: Path, entities: list[Entity], module: str, chain: Path,
                  root: Path) -> Path:
    lines = []
    for e in entities:
        sender, name = SENDERS[e.code]
        lines += [
            f'[entities.{e.code}.erp]', f'url = "http://127.0.0.1:{e.erp_port}/"',
            f'[entities.{e.code}.mail]', 'host = "127.0.0.1"', f"port = {e.smtp_port}",
            f'from_address = "{sender}"', f'from_name = "{name}"',
            f'reply_to = "{REPLY_TO[e.code]}"',
            f'[entities.{e.code}.signer]', f'module = "{module}"',
            f'token_label = "{e.code[:32]}"', 'key_label = "city"', f'pin = "{e.pin}"',
            f'chain = ["{chain}"]', f'trust_roots = ["{root}"]', ""]
    for e in entities:
        lines += ["[[staff.tokens]]",
                  f'sha256 = "{hashlib.sha256(e.token.encode()).hexdigest()}"',
                  f'subject = "staff-{e.code}"', f'entities = ["{e.code}"]',
                  'roles = ["contract-officer", "approver", "auditor"]', ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@contextmanager
def run_for(stack: CaseStack, entity: Entity, case: SampleCase,
            timeline: CaseTimeline) -> Iterator[CaseRun]:
    """The case's parties: its entity's staff token and mail spool, its contractor's
    virtual card in vpcd."""
    pin = "".join(secrets.choice("0123456789") for _ in range(6))
    creds = ensure_pki(stack.home / "pki").issue_card(case.holder, case.address,
                                                      random.randint(10**6, 10**9))
    card = seat(VirtualCard(creds.cert_der, creds.key_path, pin).start())
    stage = dataclasses.replace(stack.stage(), staff_token=entity.token,
                                mail_spool=entity.spool)
    run = CaseRun(stage, case, timeline, backend=PcscBackend(), card=creds, pin=pin,
                  reader=READER, say=None)
    try:
        yield run
    finally:
        run.close()
        card.stop()


async def conclude(run: CaseRun) -> None:
    """From 利用者登録 to conclusion and the ERP's 契約登録 (CON-2)."""
    await run.register()
    await run.open_case()
    from schemas.surety import SuretyProduct

    await run.surety(SuretyProduct.PERFORMANCE)
    await run.contract_set()
    await run.contractor_agrees()
    await run.contractor_signs()
    await run.city_signs()
    await run.registered_in_erp("contract")


def city_signer_of(pdf: bytes) -> str:
    reader = PdfFileReader(io.BytesIO(pdf))
    (city,) = [s for s in reader.embedded_signatures if s.field_name == "CitySignature"]
    return str(city.signer_cert.subject.human_friendly)


async def test_each_entity_reaches_only_its_own_peers_signer_and_staff(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    work = stack.work / "entities"
    work.mkdir()
    entities = [Entity(code, free_port(), free_port(), work / f"{code}-mail",
                       work / f"{code}-erp.sqlite3", token=secrets.token_urlsafe(24),
                       pin=secrets.token_hex(4)) for code in (A, B)]
    by_code = {e.code: e for e in entities}
    pki = ensure_pki(stack.home / "pki")
    module, signer_chain, root = signer_tokens(stack.home, pki, entities)
    policy = work / "policy.toml"
    packaged = Path(pipelines.registration.__file__).parent / "default_policy.toml"
    policy.write_text(packaged.read_text(encoding="utf-8") + KAWAGOE_ECONTRACT,
                      encoding="utf-8")
    with peers(entities, work) as ports:
        await wait_for(lambda: all(map(_listening, ports)), 60, "the entities' peers")
        hub = await stack.start(
            HUB_SETTINGS_FILE=str(settings_file(work / "hub.toml", entities, module,
                                                signer_chain, root)),
            HUB_REGISTRATION_POLICY=str(policy),
            SOFTHSM2_CONF=str(stack.home / "entity-signers" / "softhsm2.conf"))
        cases = {A: fresh_case(), B: dataclasses.replace(
            fresh_case(), entity=B, network="kawagoe-econtract", city_name="川越市")}
        signed: dict[str, bytes] = {}
        for code, case in cases.items():  # one card reader: one contractor at a time
            # each case its own timeline: a step's wait must not find the other case's
            line = timeline if code == A else timeline_for(stack.kafka)
            if line is not timeline:
                await line.start()
            try:
                with run_for(stack, by_code[code], case, line) as run:
                    await conclude(run)
                    signed[code] = await run.signed_document()
                    assert run.outcome.validation["valid"] is True, run.outcome.validation
            finally:
                if line is not timeline:
                    await line.stop()

        # each case's 契約登録 in its own entity's ERP only, none in the installation's
        for code, case in cases.items():
            other = B if code == A else A
            assert by_code[code].erp_rows(case.case_id) == [f"contract-{case.case_id}"]
            assert by_code[other].erp_rows(case.case_id) == []
            assert ledger_rows(stack.erp_db, case.case_id) == []

        # each case's mails through its own relay only, from its own sender
        for code, case in cases.items():
            own = by_code[code]
            elsewhere = by_code[B if code == A else A]
            await wait_for(lambda own=own, case=case: len(with_subject(  # type: ignore[misc]
                mails_to(own.mails(), case), "電子契約締結のお知らせ")) >= 2, 30,
                f"{code}'s conclusion mails")
            mine = mails_to(own.mails(), case)
            assert len(with_subject(mine, REVIEW)) == 1
            assert {m["From"].addresses[0].addr_spec for m in mine} == {SENDERS[code][0]}
            assert {str(m["Reply-To"]) for m in mine} == {REPLY_TO[code]}
            assert mails_to(elsewhere.mails(), case) == []
            assert stack.mails_to({case.authorized.email.lower(),
                                   case.city_officer.email.lower()}) == []

        # each signed with its own entity's key, as the PDF and the hub's record say
        for code, case in cases.items():
            assert SIGNERS[code] in city_signer_of(signed[code])
            with Session(stack.engine) as session:
                row = session.get(CitySignatureRow, (case.case_id, _contractor_sha(
                    stack, case.case_id)))
            assert row is not None
            assert SIGNERS[code] in row.signer_subject

        # staff of one entity: not in the list, not readable, no agreement (IAM-3)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
            ready = (await http.get("/readyz")).json()
            watched = {name: c["ok"] for name, c in ready["connectors"].items()
                       if name.startswith(("connector.erp", "connector.mail"))}
            assert watched == {f"connector.{k}@{e}": True for k in ("erp", "mail")
                               for e in (A, B)}, ready["connectors"]
            for code, case in cases.items():
                own, elsewhere = by_code[code], by_code[B if code == A else A]
                listed = await http.get("/contracts", headers=_auth(own))
                assert listed.status_code == 200
                assert case.case_id in {c["case_id"] for c in listed.json()}
                theirs = await http.get("/contracts", headers=_auth(elsewhere))
                assert case.case_id not in {c["case_id"] for c in theirs.json()}
                for method, path, body in (
                        ("GET", f"/contracts/{case.case_id}/document", None),
                        ("POST", f"/contracts/{case.case_id}/city-agreement",
                         {"by": case.city_officer.email})):
                    refused = await http.request(method, path, json=body,
                                                 headers=_auth(elsewhere))
                    assert refused.status_code == 403, (path, refused.text)
                    (violation,) = refused.json()["detail"]["violations"]
                    assert violation["rule_id"] == "IAM-3"
                    assert violation["message_ja"]
                    assert violation["message_en"]

    # the audit trail: each case's steps under its own entity, refusals denied; it verifies
    with Session(stack.engine) as session:
        rows = list(session.exec(sa.select(AuditRecord)).scalars())  # type: ignore[call-overload]
        chain = verify(session)
    assert chain.ok, chain.reason
    for code, case in cases.items():
        other = B if code == A else A
        about = [r for r in rows if r.target == case.case_id]
        assert {r.entity for r in about} == {code}
        actions = {(r.action, r.actor, r.outcome) for r in about}
        assert ("contracts.contract-set", f"staff-{code}", "ok") in actions, actions
        assert ("contracts.city-agreement", f"staff-{code}", "ok") in actions, actions
        assert ("review.agree", case.authorized.email.lower(), "ok") in actions, actions
        denied = {(r.action, r.outcome) for r in about if r.actor == f"staff-{other}"}
        assert denied == {("contracts.document", "denied"),
                          ("contracts.city-agreement", "denied")}, denied


def _auth(entity: Entity) -> dict[str, str]:
    return {"Authorization": f"Bearer {entity.token}"}


def _contractor_sha(stack: CaseStack, case_id: str) -> str:
    from pipelines.contract.store import load_case

    with Session(stack.engine) as session:
        state = load_case(session, case_id)
    assert state is not None
    assert state.contractor_signed is not None
    return state.contractor_signed.sha256
