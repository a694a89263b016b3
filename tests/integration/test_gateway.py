"""The card-agent gateway against PostgreSQL, with the real registration handlers.

Card login by challenge/response (REG-1, RNW-7, replay and stale challenges refused),
registration/change/renewal through the outbox (REG-7, REG-10, RNW-6), signing jobs
scoped to their user ID, and returned signatures validated by pyHanko (CON-5, PIN-2).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import tomllib
from collections.abc import Iterator
from importlib import resources
from io import BytesIO
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy.engine import Engine

from card_agent.client import DocumentMismatchError, GatewayClient, GatewayRefusedError
from card_agent.signing import RESERVED, sign_pdf
from connectors.tsa import TsaConnector, TsaSettings
from connectors.tsa.peer import ReferenceTsa
from devkit.pki import CardCredentials, DevPki
from hub.gateway.config import GatewayConfig
from hub.gateway.jobs import create_job
from hub.gateway.models import SigningJobRow
from hub.gateway.validation import validate_signed_pdf
from pipelines.registration.policy import PolicyBook, policy_book_from
from schemas.envelope import JST
from tests.card.hubside import (
    ADDRESS,
    COMPANIES,
    ENTITY,
    PASSWORD,
    USER_A,
    USER_B,
    drive,
    gateway_app,
    seed_qualification,
)
from tests.card.pdfs import make_pdf
from tests.card.pki import shared_pki
from tests.card.softcard import SoftCard

pytestmark = [pytest.mark.postgres, pytest.mark.tsa]

CONTACT = {"contact_name": "営業部", "postal_code": "123-0000", "address": ADDRESS,
           "person_name": "日立 次郎", "phone": "044-812-7358", "fax": "044-812-8681",
           "email": "ic-card@example.jp", "email_confirmation": "ic-card@example.jp"}


WHERE = {"procuring_entity": ENTITY, "system": "e-contract", "domain": "works"}


class Clock:
    def __init__(self) -> None:
        self.shift = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.shift


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return shared_pki()


@pytest.fixture(scope="module")
def tsa(pki: DevPki) -> Iterator[TsaConnector]:
    with ReferenceTsa(pki) as server:
        yield TsaConnector(TsaSettings(url=server.url), pki.trust_roots)


@pytest.fixture(scope="module")
def cards(pki: DevPki) -> dict[str, CardCredentials]:
    holders = {"a": USER_A, "a2": USER_A, "b": USER_B, "stranger": USER_A}
    serials = {"a": 9101, "a2": 9102, "b": 9201, "stranger": 9301}
    return {name: pki.issue_card(COMPANIES[user][1], COMPANIES[user][2], serials[name])
            for name, user in holders.items()}


class Hub:
    def __init__(self, engine: Engine, cfg: GatewayConfig, clock: Clock) -> None:
        self.engine, self.cfg, self.clock = engine, cfg, clock
        self.http = TestClient(gateway_app(cfg))
        self.done: set[int] = set()

    def client(self, creds: CardCredentials) -> GatewayClient:
        return GatewayClient(self.http, chain=creds.chain[:1], where=WHERE)

    def use_book(self, book: PolicyBook, *clients: GatewayClient) -> None:
        """The gateway rebuilt on ``book``; ``clients`` (their sessions kept) talk to it."""
        self.cfg = dataclasses.replace(self.cfg, book=book)
        self.http = TestClient(gateway_app(self.cfg))
        for client in clients:
            client.http = self.http

    def drive(self) -> int:
        return drive(self.engine, self.clock(), self.done)

    def register(self, creds: CardCredentials, user_id: str, **over: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "procuring_entity": ENTITY, "system": "e-contract", "domain": "works",
            "user_id": user_id, "trade_name": COMPANIES[user_id][0], "password": PASSWORD,
            "department_name": "営業部", "representative_contact": CONTACT,
            "card_department_contact": CONTACT}
        fields.update(over)
        client = self.client(creds)
        request_id = client.register(SoftCard(creds), fields)
        assert self.drive() == 1
        return client.outcome(request_id)


@pytest.fixture
def hub(pg_engine: Engine, pki: DevPki) -> Hub:
    clock = Clock()
    cfg = GatewayConfig(engine=pg_engine, card_roots=pki.trust_roots,
                        signature_roots=pki.trust_roots, clock=clock)
    now = clock()
    for user in (USER_A, USER_B):
        seed_qualification(pg_engine, user, now)
    return Hub(pg_engine, cfg, clock)


def test_registration_gives_company_id_then_the_card_logs_in(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    answer = hub.register(cards["a"], USER_A)
    assert answer["status"] == "done", answer
    assert len(answer["company_id"]) == 16
    assert answer["summary"]["card"]["serial"] == "9101"
    session = hub.client(cards["a"]).login(SoftCard(cards["a"]))
    assert (session["user_id"], session["company_id"]) == (USER_A, answer["company_id"])


def test_wrong_password_is_rejected_with_rule_ids(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    answer = hub.register(cards["a"], USER_A, password="wrong123")
    assert answer["status"] == "rejected"
    assert "REG-3" in {v["rule_id"] for v in answer["violations"]}


def test_bad_input_names_reg_7(hub: Hub, cards: dict[str, CardCredentials]) -> None:
    bad = {**CONTACT, "postal_code": "1230000"}
    with pytest.raises(GatewayRefusedError) as refused:
        hub.register(cards["a"], USER_A, card_department_contact=bad)
    assert refused.value.status == 422
    assert {v.rule_id for v in refused.value.violations} == {"REG-7"}
    assert any("postal_code" in (v.field or "") for v in refused.value.violations)


def test_unregistered_card_cannot_log_in(hub: Hub, cards: dict[str, CardCredentials]) -> None:
    with pytest.raises(GatewayRefusedError) as refused:
        hub.client(cards["stranger"]).login(SoftCard(cards["stranger"]))
    assert refused.value.status == 403
    assert refused.value.violations[0].rule_id == "REG-1"


def test_card_from_an_untrusted_ca_is_refused(
    hub: Hub, cards: dict[str, CardCredentials], pki: DevPki
) -> None:
    hub.cfg = GatewayConfig(engine=hub.engine, card_roots=(pki.other_root.certificate,),
                            signature_roots=pki.trust_roots, clock=hub.clock)
    hub.http = TestClient(gateway_app(hub.cfg))
    with pytest.raises(GatewayRefusedError) as refused:
        hub.client(cards["a"]).login(SoftCard(cards["a"]))
    assert refused.value.violations[0].rule_id == "REG-1"


def test_replayed_and_stale_challenges_are_refused(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    hub.register(cards["a"], USER_A)
    client = hub.client(cards["a"])
    proof = client.prove(SoftCard(cards["a"]))
    hub.http.post("/gateway/sessions", json={**proof, **WHERE}).raise_for_status()
    replay = hub.http.post("/gateway/sessions", json={**proof, **WHERE})
    assert replay.status_code == 401
    assert replay.json()["detail"]["violations"][0]["rule_id"] == "PIN-2"
    stale = client.prove(SoftCard(cards["a"]))
    hub.clock.shift = dt.timedelta(minutes=3)
    assert hub.http.post("/gateway/sessions", json={**stale, **WHERE}).status_code == 401


def test_after_renewal_the_old_card_cannot_log_in(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    hub.register(cards["a"], USER_A)
    old_client = hub.client(cards["a"])
    old_client.login(SoftCard(cards["a"]))
    fields = {"procuring_entity": ENTITY, "system": "e-contract", "domain": "works"}
    # RNW-6: the new card first is refused.
    new_first = hub.client(cards["a2"]).prove(SoftCard(cards["a2"]))
    old_second = old_client.prove(SoftCard(cards["a"]))
    with pytest.raises(GatewayRefusedError) as refused:
        old_client.renew(old_second, new_first, fields)
    assert refused.value.violations[0].rule_id == "RNW-6"
    old_proof = old_client.prove(SoftCard(cards["a"]))
    new_proof = hub.client(cards["a2"]).prove(SoftCard(cards["a2"]))
    request_id = old_client.renew(old_proof, new_proof, fields)
    assert hub.drive() == 1
    assert old_client.outcome(request_id)["status"] == "done"
    with pytest.raises(GatewayRefusedError) as gone:
        hub.client(cards["a"]).login(SoftCard(cards["a"]))
    assert gone.value.status == 403
    assert gone.value.violations[0].rule_id == "RNW-7"  # replaced by renewal, not unknown
    assert gone.value.violations[0].message_en
    with pytest.raises(GatewayRefusedError):
        old_client.jobs()  # the old card's open session died with it (RNW-7)
    assert hub.client(cards["a2"]).login(SoftCard(cards["a2"]))["user_id"] == USER_A


def test_contractor_a_cannot_fetch_contractor_b_jobs(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    hub.register(cards["a"], USER_A)
    hub.register(cards["b"], USER_B)
    with hub.cfg.transaction() as session:
        job_b = create_job(session, network=ENTITY, user_id=USER_B, procuring_entity=ENTITY,
                           subject="工事B", parties=["市", "B社"], amount_yen=1,
                           document=make_pdf(), now=hub.clock()).id
    a = hub.client(cards["a"])
    a.login(SoftCard(cards["a"]))
    assert a.jobs() == []
    with pytest.raises(GatewayRefusedError) as refused:
        a.job(job_b)
    assert refused.value.status == 404
    b = hub.client(cards["b"])
    b.login(SoftCard(cards["b"]))
    assert [j["id"] for j in b.jobs()] == [job_b]


def test_signed_job_is_validated_and_an_altered_byte_is_rejected(
    hub: Hub, cards: dict[str, CardCredentials], tsa: TsaConnector
) -> None:
    hub.register(cards["a"], USER_A)
    hub.register(cards["b"], USER_B)
    with hub.cfg.transaction() as session:
        jobs = [create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                           subject=f"工事{n}", parties=["市", "北東組株式会社"],
                           amount_yen=12_345_000, document=make_pdf(), now=hub.clock()).id
                for n in range(3)]
    a = hub.client(cards["a"])
    a.login(SoftCard(cards["a"]))
    detail = a.job(jobs[0])
    assert (detail["subject"], detail["amount_yen"]) == ("工事0", 12_345_000)
    pdf = a.document(detail)
    signed = sign_pdf(pdf, SoftCard(cards["a"]), tsa.timestamper(), chain=cards["a"].chain)
    altered = bytearray(signed)
    altered[altered.index(b"Contract 2026-001")] ^= 0x01
    with pytest.raises(GatewayRefusedError) as rejected:
        a.submit_signed(jobs[0], bytes(altered))
    assert rejected.value.violations[0].rule_id == "CON-5"
    assert a.submit_signed(jobs[0], signed)["status"] == "signed"
    # Another registered card (user B) signing A's document is refused (PIN-2).
    pdf1 = a.document(a.job(jobs[1]))
    by_b = sign_pdf(pdf1, SoftCard(cards["b"]), tsa.timestamper(), chain=cards["b"].chain)
    with pytest.raises(GatewayRefusedError) as wrong:
        a.submit_signed(jobs[1], by_b)
    assert wrong.value.violations[0].rule_id == "PIN-2"
    # The signature of one job's document does not pass for another job (CON-5).
    with pytest.raises(GatewayRefusedError) as other:
        a.submit_signed(jobs[2], signed)
    assert other.value.violations[0].rule_id == "CON-5"


def test_pdfs_travel_as_application_pdf_bound_to_their_sha256(
    hub: Hub, cards: dict[str, CardCredentials], tsa: TsaConnector
) -> None:
    hub.register(cards["a"], USER_A)
    pdf = make_pdf()
    with hub.cfg.transaction() as session:
        job_id = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                            subject="工事", parties=["市"], amount_yen=1, document=pdf,
                            now=hub.clock()).id
    a = hub.client(cards["a"])
    a.login(SoftCard(cards["a"]))
    detail = a.job(job_id)
    assert "document" not in detail  # no base64 copy in the JSON
    auth = {"Authorization": f"Bearer {a.token}"}
    reply = hub.http.get(detail["document_url"], headers=auth)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/pdf"
    assert reply.content == pdf
    assert reply.headers["repr-digest"] == (
        f"sha-256=:{base64.b64encode(hashlib.sha256(pdf).digest()).decode()}:")
    assert hub.http.get(detail["document_url"]).status_code == 401
    signed = sign_pdf(a.document(detail), SoftCard(cards["a"]), tsa.timestamper(),
                      chain=cards["a"].chain)
    put = f"/gateway/jobs/{job_id}/signed"

    def refused(headers: dict[str, str], body: bytes = signed) -> tuple[int, dict[str, Any]]:
        answer = hub.http.put(put, content=body, headers={**auth, **headers})
        violation: dict[str, Any] = answer.json()["detail"]["violations"][0]
        return answer.status_code, violation

    status, violation = refused({"Content-Type": "application/json"})
    assert (status, violation["rule_id"]) == (415, "EDGE-3")
    assert "application/pdf" in violation["message_en"]
    assert violation["message_ja"]
    assert violation["next_step_en"]
    assert refused({})[0] == 415  # no content type at all
    other = base64.b64encode(hashlib.sha256(b"another file").digest()).decode()
    status, violation = refused({"Content-Type": "application/pdf",
                                 "Content-Digest": f"sha-256=:{other}:"})
    assert (status, violation["rule_id"]) == (422, "EDGE-3")
    assert "Content-Digest" in violation["message_en"]
    status, violation = refused({"Content-Type": "application/pdf",
                                 "Content-Digest": "sha-256=not-base64"})
    assert (status, violation["rule_id"]) == (400, "EDGE-3")
    with hub.cfg.transaction() as session:
        row = session.get(SigningJobRow, job_id)
        assert row is not None
        assert row.status == "pending"
    # The agent's own upload carries the right digest and is accepted.
    assert a.submit_signed(job_id, signed)["status"] == "signed"


def test_the_agent_refuses_a_document_that_is_not_the_announced_one(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    hub.register(cards["a"], USER_A)
    with hub.cfg.transaction() as session:
        job_id = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                            subject="工事", parties=["市"], amount_yen=1,
                            document=make_pdf(title="Contract A"), now=hub.clock()).id
    a = hub.client(cards["a"])
    a.login(SoftCard(cards["a"]))
    detail = a.job(job_id)
    with hub.cfg.transaction() as session:  # the stored file changes, its hash does not
        row = session.get(SigningJobRow, job_id)
        assert row is not None
        row.document = make_pdf(title="Contract B")
        session.add(row)
    with pytest.raises(DocumentMismatchError) as mismatch:
        a.document(detail)
    assert mismatch.value.violation.rule_id == "AGT-4"
    assert "document_sha256" in mismatch.value.violation.message_en
    assert mismatch.value.violation.next_step_ja


def test_card_signature_fills_the_fixed_space_or_falls_back_to_the_estimate(
        tsa: TsaConnector, cards: dict[str, CardCredentials], pki: DevPki) -> None:
    # A fixed space spares pyHanko's dry-run CMS and dummy token (card agent 65 -> 29 ms CPU)
    pdf, card = make_pdf(), cards["a"]
    signed = sign_pdf(pdf, SoftCard(card), tsa.timestamper(), chain=card.chain)
    contents = PdfFileReader(BytesIO(signed)).embedded_signatures[0].sig_object["/Contents"]
    assert len(contents) * 2 == RESERVED
    validate_signed_pdf(signed, pki.trust_roots, card.issuer_dn, card.serial)
    # smaller than any CMS with a chain and a token: signed again in the estimated space
    fallback = sign_pdf(pdf, SoftCard(card), tsa.timestamper(), chain=card.chain,
                        reserved=1_000)
    contents = PdfFileReader(BytesIO(fallback)).embedded_signatures[0].sig_object["/Contents"]
    assert 500 < len(contents) != RESERVED // 2
    validate_signed_pdf(fallback, pki.trust_roots, card.issuer_dn, card.serial)


# --- sessions bound to the entity, system and domain they were opened for ---------------

@pytest.mark.parametrize(("where", "status", "rule_id"), [
    ({"domain": "goods"}, 403, "CHG-2"),  # registered for 工事 only
    ({"procuring_entity": "saitama-pref", "system": "e-bid"}, 403, "REG-1"),  # not there
    ({"procuring_entity": "nowhere-city"}, 403, "REG-3"),  # no such entity in the hub
])
def test_login_is_refused_where_the_card_is_not_registered(
    hub: Hub, cards: dict[str, CardCredentials], where: dict[str, str], status: int,
    rule_id: str,
) -> None:
    hub.register(cards["a"], USER_A)
    client = hub.client(cards["a"])
    with pytest.raises(GatewayRefusedError) as refused:
        client.login(SoftCard(cards["a"]), {**WHERE, **where})
    assert refused.value.status == status
    (violation,) = refused.value.violations
    assert violation.rule_id == rule_id
    assert violation.message_ja
    assert violation.message_en
    assert violation.next_step_ja
    assert violation.next_step_en
    assert client.token is None
    session = client.login(SoftCard(cards["a"]))  # where it is registered: a session
    assert (session["procuring_entity"], session["system"], session["domain"]) == (
        ENTITY, "e-contract", "works")


def test_an_unknown_card_is_refused_reg1_with_bilingual_text(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    with pytest.raises(GatewayRefusedError) as refused:
        hub.client(cards["stranger"]).login(SoftCard(cards["stranger"]))
    (violation,) = refused.value.violations
    assert (violation.rule_id, violation.message_ja) == ("REG-1",
                                                         "このICカードは登録されていません。")
    assert violation.message_en == "This IC card is not registered."


def test_a_session_sees_only_the_jobs_of_its_entity(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    hub.register(cards["a"], USER_A)
    with hub.cfg.transaction() as session:
        here = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                          subject="工事X", parties=["国", "北東組"], amount_yen=1,
                          document=make_pdf(), now=hub.clock()).id
        elsewhere = create_job(session, network=ENTITY, user_id=USER_A,
                               procuring_entity="ashikaga-city", subject="工事Y",
                               parties=["市", "北東組"], amount_yen=1, document=make_pdf(),
                               now=hub.clock()).id
    a = hub.client(cards["a"])
    a.login(SoftCard(cards["a"]))
    assert [j["id"] for j in a.jobs()] == [here]
    with pytest.raises(GatewayRefusedError) as hidden:
        a.job(elsewhere)
    assert hidden.value.status == 404


def test_inside_an_announced_window_login_and_signing_answer_win2_with_its_end(
    hub: Hub, cards: dict[str, CardCredentials]
) -> None:
    hub.register(cards["a"], USER_A)
    with hub.cfg.transaction() as session:
        job = create_job(session, network=ENTITY, user_id=USER_A, procuring_entity=ENTITY,
                         subject="工事Z", parties=["国", "北東組"], amount_yen=1,
                         document=make_pdf(), now=hub.clock()).id
    a = hub.client(cards["a"])
    a.login(SoftCard(cards["a"]))
    now = hub.clock().astimezone(JST)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(hours=2)
    window = {"date": start.date().isoformat(), "start": f"{start:%H:%M}",
              "end": f"{end:%H:%M}"}
    unwindowed = hub.cfg
    try:
        hub.use_book(book_with_mlit_windows([{**window, "stops": "signing"}]), a)
        with pytest.raises(GatewayRefusedError) as held:
            a.submit_signed(job, make_pdf())
        assert held.value.status == 503
        assert held.value.violations[0].rule_id == "WIN-2"
        assert f"{end:%H:%M}" in held.value.violations[0].next_step_ja
        assert a.job(job)["status"] == "pending"  # held, not failed
        hub.use_book(book_with_mlit_windows([{**window, "stops": "all"}]), a)
        with pytest.raises(GatewayRefusedError) as closed:
            a.jobs()  # the open session too
        assert (closed.value.status, closed.value.violations[0].rule_id) == (503, "WIN-2")
        with pytest.raises(GatewayRefusedError) as refused:
            hub.client(cards["a"]).login(SoftCard(cards["a"]))
        assert refused.value.violations[0].rule_id == "WIN-2"
    finally:
        hub.use_book(unwindowed.book, a)
    assert a.jobs()  # after the window (here: without it) the session works again


def book_with_mlit_windows(windows: list[dict[str, str]]) -> PolicyBook:
    text = resources.files("pipelines.registration").joinpath(
        "default_policy.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for entry in data["entity"]:
        if entry["code"] == ENTITY:
            entry["maintenance"] = windows
    return policy_book_from(data)
