"""Staff identity against a real OpenID Connect provider: the Keycloak of deploy/keycloak.sh
with the realm of deploy/keycloak/realm-procurement.json (IAM-1, IAM-2, IAM-3).

People log in with the authorization-code flow and PKCE, a back-office system with client
credentials; the hub verifies their access tokens against the realm's JWKS. A 契約担当 of
kawagoe-city and a 承認者 of saitama-pref each see and act only on their own entity's
cases; the acting officer is the token's; an expired, wrongly signed, tampered or
other-audience token is refused; a rotated signing key is picked up; every step and
refusal lands once in the audit trail with the right person. The same holds for the
registrations and dead letters (hub/staff_queries.py): the 契約担当 of kawagoe-city sees
only kawagoe-city's registrations and may not read dead letters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import orjson
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.contract.archive_api import archive_router
from hub.db import OutboxRecord
from hub.identity import IdentityError, OidcVerifier, Role, StaffIdentity
from hub.outbox import load_headers
from hub.settings import KafkaSettings, OidcSettings, Settings
from hub.staff_api import staff_router
from hub.staff_queries import KafkaDeadLetters
from pipelines.contract.store import save_case
from schemas.contract import CityAgreed, ContractStatus
from schemas.topics import KeyKind, Topics, TopicSpec
from schemas.wire import decode
from tests.card.pdfs import make_pdf
from tests.support.kafka import create_topics, publish_raw
from tests.support.keycloak import (
    AUDITOR,
    ISSUER,
    KAWAGOE_BATCH,
    KAWAGOE_OFFICER,
    OTHER_APP,
    SAITAMA_APPROVER,
    add_signing_key,
    client_token,
    login,
    remove_signing_key,
    require_keycloak,
)
from tests.support.staff import case, registration_answers

pytestmark = pytest.mark.postgres

OUTBOX = OutboxRecord.__table__


KAWAGOE_APPLIED = case("K-0001", "kawagoe-city", KAWAGOE_OFFICER[2], ContractStatus.APPLIED)
KAWAGOE_SIGNED = case("K-0002", "kawagoe-city", KAWAGOE_OFFICER[2],
                      ContractStatus.CONTRACTOR_SIGNED)
SAITAMA_APPLIED = case("S-0001", "saitama-pref", SAITAMA_APPROVER[2], ContractStatus.APPLIED)
SAITAMA_SIGNED = case("S-0002", "saitama-pref", SAITAMA_APPROVER[2],
                      ContractStatus.CONTRACTOR_SIGNED)


@dataclass
class Site:
    http: TestClient
    engine: Engine
    verifier: OidcVerifier

    def as_(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def audit_rows(self) -> list[audit.AuditRecord]:
        with Session(self.engine) as db:
            return list(reversed(audit.rows(db, limit=1000)))

    def commands(self) -> list[object]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(OUTBOX).where(
                OUTBOX.c.topic == Topics.CONTRACT_COMMANDS.name).order_by(OUTBOX.c.id)))
        return [decode(r.value, load_headers(r.headers)).payload for r in rows]


@pytest.fixture(scope="module")
def realm() -> None:
    require_keycloak()


@pytest.fixture
def site(realm: None, engine: Engine) -> Iterator[Site]:
    with Session(engine) as db, db.begin():
        for state in (KAWAGOE_APPLIED, KAWAGOE_SIGNED, SAITAMA_APPLIED, SAITAMA_SIGNED):
            save_case(db, state)
    verifier = OidcVerifier(OidcSettings(issuer=ISSUER, jwks_min_refetch_s=0))
    identity = StaffIdentity(oidc=verifier)
    app = FastAPI()
    app.include_router(archive_router(engine, (), identity=identity))
    app.include_router(staff_router(engine, identity))
    with TestClient(app) as http:
        yield Site(http, engine, verifier)


def violation(response: httpx.Response) -> dict[str, str]:
    (found,) = response.json()["detail"]["violations"]
    assert found["message_ja"]
    assert found["message_en"]
    assert found["next_step_ja"]
    assert found["next_step_en"]
    return dict(found)


def test_each_person_sees_and_acts_only_on_their_own_entity(site: Site) -> None:
    officer = site.as_(login(*KAWAGOE_OFFICER[:2]))
    approver = site.as_(login(*SAITAMA_APPROVER[:2]))

    listed = site.http.get("/contracts", headers=officer)
    assert listed.status_code == 200, listed.text
    assert sorted(c["case_id"] for c in listed.json()) == ["K-0001", "K-0002"]
    listed = site.http.get("/contracts", headers=approver)
    assert sorted(c["case_id"] for c in listed.json()) == ["S-0001", "S-0002"]

    me = site.http.get("/staff/me", headers=officer).json()
    assert (me["kind"], me["email"], me["entities"], me["roles"]) == (
        "person", KAWAGOE_OFFICER[2], ["kawagoe-city"], ["contract-officer"])

    pdf = make_pdf(2_000, "Contract K-0001")
    upload = {"content-type": "application/pdf"}
    sent = site.http.post("/contracts/K-0001/contract-set", params={"title": "請負契約書"},
                          content=pdf, headers={**officer, **upload})
    assert sent.status_code == 202, sent.text
    other = site.http.post("/contracts/S-0001/contract-set", params={"title": "請負契約書"},
                           content=pdf, headers={**officer, **upload})
    assert other.status_code == 403
    assert violation(other)["rule_id"] == "IAM-3"
    assert "saitama-pref" in violation(other)["message_en"]
    for path in ("/contracts/S-0002/certificate", "/contracts/S-0002/document"):
        seen = site.http.get(path, headers=officer)
        assert (seen.status_code, violation(seen)["rule_id"]) == (403, "IAM-3")
    not_mine = site.http.post("/contracts/K-0002/city-agreement", headers=officer)
    assert (not_mine.status_code, violation(not_mine)["rule_id"]) == (403, "IAM-2")
    assert "承認者" in violation(not_mine)["message_ja"]

    # the officer of the agreement is the token's person, whatever a body says
    agreed = site.http.post("/contracts/S-0002/city-agreement", headers=approver,
                            json={"by": "someone.else@example.jp"})
    assert agreed.status_code == 202, agreed.text
    across = site.http.post("/contracts/K-0002/city-agreement", headers=approver)
    assert (across.status_code, violation(across)["rule_id"]) == (403, "IAM-3")
    upload_as_approver = site.http.post("/contracts/S-0001/contract-set",
                                        params={"title": "x"}, content=pdf,
                                        headers={**approver, **upload})
    assert (upload_as_approver.status_code, violation(upload_as_approver)["rule_id"]) == (
        403, "IAM-2")

    commands = site.commands()
    assert [type(c).__name__ for c in commands] == ["ContractSetPrepared", "CityAgreed"]
    agreement = commands[1]
    assert isinstance(agreement, CityAgreed)
    assert (agreement.case_id, agreement.by) == ("S-0002", SAITAMA_APPROVER[2])

    rows = [(r.actor, r.role, r.entity, r.action, r.target, r.outcome)
            for r in site.audit_rows()]
    assert rows == [
        (KAWAGOE_OFFICER[2], "contract-officer", "kawagoe-city", "contracts.search",
         "contracts", "ok"),
        (SAITAMA_APPROVER[2], "approver", "saitama-pref", "contracts.search", "contracts",
         "ok"),
        (KAWAGOE_OFFICER[2], "contract-officer", "kawagoe-city", "contracts.contract-set",
         "K-0001", "ok"),
        (KAWAGOE_OFFICER[2], "contract-officer", "saitama-pref", "contracts.contract-set",
         "S-0001", "denied"),
        (KAWAGOE_OFFICER[2], "contract-officer", "saitama-pref", "contracts.certificate",
         "S-0002", "denied"),
        (KAWAGOE_OFFICER[2], "contract-officer", "saitama-pref", "contracts.document",
         "S-0002", "denied"),
        (KAWAGOE_OFFICER[2], "", "kawagoe-city", "contracts.city-agreement", "K-0002",
         "denied"),
        (SAITAMA_APPROVER[2], "approver", "saitama-pref", "contracts.city-agreement",
         "S-0002", "ok"),
        (SAITAMA_APPROVER[2], "approver", "kawagoe-city", "contracts.city-agreement",
         "K-0002", "denied"),
        (SAITAMA_APPROVER[2], "", "saitama-pref", "contracts.contract-set", "S-0001",
         "denied"),
    ]
    assert all(r.client for r in site.audit_rows())  # the caller's address is kept


def test_the_auditor_reads_the_trail_and_others_may_not(site: Site) -> None:
    officer = site.as_(login(*KAWAGOE_OFFICER[:2]))
    assert site.http.get("/contracts", headers=officer).status_code == 200
    refused = site.http.get("/staff/audit", headers=officer)
    assert (refused.status_code, violation(refused)["rule_id"]) == (403, "IAM-2")
    assert "監査" in violation(refused)["message_ja"]

    auditor = site.as_(login(*AUDITOR[:2]))
    rows = site.http.get("/staff/audit", headers=auditor)
    assert rows.status_code == 200, rows.text
    assert [(r["actor"], r["action"], r["outcome"]) for r in rows.json()] == [
        (KAWAGOE_OFFICER[2], "audit.list", "denied"),
        (KAWAGOE_OFFICER[2], "contracts.search", "ok")]
    checked = site.http.get("/staff/audit/verify", headers=auditor).json()
    assert (checked["ok"], checked["checked"]) == (True, 3)
    # the auditor reads only: no step of the process
    step = site.http.post("/contracts/K-0001/contract-set", params={"title": "x"},
                          content=make_pdf(2_000), headers={**auditor,
                                                            "content-type": "application/pdf"})
    assert (step.status_code, violation(step)["rule_id"]) == (403, "IAM-2")


@pytest.fixture
def dlq_site(realm: None, engine: Engine, kafka_bootstrap: str, unique: str
             ) -> Iterator[Site]:
    """The staff routes with a dead-letter topic holding one letter of each entity and
    one of an entity nobody in the realm belongs to."""
    spec = TopicSpec(f"test.kcdlq.{unique}", "staff dead letters", KeyKind.CASE,
                     partitions=1)
    asyncio.run(create_topics(kafka_bootstrap, [spec]))
    asyncio.run(publish_raw(kafka_bootstrap, spec.dlq, [
        (b"k", orjson.dumps({"procuring_entity": e, "payload": {}}),
         [("x-dlq-original-topic", spec.name.encode()), ("x-dlq-reason", b"rejected")])
        for e in ("kawagoe-city", "saitama-pref", "tokorozawa-city")]))
    verifier = OidcVerifier(OidcSettings(issuer=ISSUER, jwks_min_refetch_s=0))
    identity = StaffIdentity(oidc=verifier)
    source = KafkaDeadLetters(Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap)),
                              topics=[spec.dlq])
    app = FastAPI()
    app.include_router(staff_router(engine, identity, dead_letters=source))
    with TestClient(app) as http:
        yield Site(http, engine, verifier)


def test_registrations_and_dead_letters_are_the_entitys_and_the_roles(dlq_site: Site) -> None:
    site = dlq_site
    kawagoe = {registration_answers(site.engine, "kawagoe-city"),
               registration_answers(site.engine, "kawagoe-city", rejected="REG-3")}
    saitama = registration_answers(site.engine, "saitama-pref", rejected="REG-5")
    officer = site.as_(login(*KAWAGOE_OFFICER[:2]))
    listed = site.http.get("/staff/registrations", headers=officer)
    assert listed.status_code == 200, listed.text
    assert {r["request_id"] for r in listed.json()} == kawagoe
    assert sorted(r["rule_ids"] for r in listed.json()) == [[], ["REG-3"]]
    refused = site.http.get("/staff/dead-letters", headers=officer)
    assert (refused.status_code, violation(refused)["rule_id"]) == (403, "IAM-2")
    approver = site.as_(login(*SAITAMA_APPROVER[:2]))  # 承認者: neither list
    for route in ("/staff/registrations", "/staff/dead-letters"):
        refused = site.http.get(route, headers=approver)
        assert (refused.status_code, violation(refused)["rule_id"]) == (403, "IAM-2")
    auditor = site.as_(login(*AUDITOR[:2]))  # 監査 of both entities: theirs, not another's
    assert {r["request_id"] for r in site.http.get(
        "/staff/registrations", headers=auditor).json()} == kawagoe | {saitama}
    letters = site.http.get("/staff/dead-letters", headers=auditor)
    assert letters.status_code == 200, letters.text
    assert [d["entity"] for d in letters.json()] == ["kawagoe-city", "saitama-pref"]
    replay = site.http.post(f"/staff/dead-letters/{letters.json()[0]['id']}/replay",
                            headers=auditor)
    assert (replay.status_code, violation(replay)["rule_id"]) == (403, "IAM-2")
    assert [(r.actor, r.action, r.outcome) for r in site.audit_rows()] == [
        (KAWAGOE_OFFICER[2], "registrations.list", "ok"),
        (KAWAGOE_OFFICER[2], "dlq.list", "denied"),
        (SAITAMA_APPROVER[2], "registrations.list", "denied"),
        (SAITAMA_APPROVER[2], "dlq.list", "denied"),
        (AUDITOR[2], "registrations.list", "ok"),
        (AUDITOR[2], "dlq.list", "ok"),
        (AUDITOR[2], "dlq.replay", "denied")]


def test_a_back_office_client_gets_only_its_entities_and_operations(site: Site) -> None:
    batch = site.as_(client_token(*KAWAGOE_BATCH))
    listed = site.http.get("/contracts", headers=batch)
    assert sorted(c["case_id"] for c in listed.json()) == ["K-0001", "K-0002"]
    agree = site.http.post("/contracts/K-0002/city-agreement", headers=batch)
    assert (agree.status_code, violation(agree)["rule_id"]) == (403, "IAM-2")
    (row,) = [r for r in site.audit_rows() if r.action == "contracts.search"]
    assert (row.actor, row.actor_kind) == ("client:erp-batch-kawagoe", "client")


def refused_401(site: Site, token: str) -> str:
    answer = site.http.get("/contracts", headers=site.as_(token))
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")
    found = violation(answer)
    assert found["rule_id"] == "IAM-1"
    return found["message_en"]


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(head))),
            json.loads(base64.urlsafe_b64decode(pad(body))))


def test_expired_wrongly_signed_tampered_and_other_audience_tokens_are_refused(
        site: Site) -> None:
    token = login(*KAWAGOE_OFFICER[:2])
    header, claims = _segments(token)
    assert site.http.get("/contracts", headers=site.as_(token)).status_code == 200

    # expired: the same token, checked after its expiry plus the leeway
    exp = float(claims["exp"])  # type: ignore[arg-type]
    late = OidcVerifier(OidcSettings(issuer=ISSUER, leeway_s=30), clock=lambda: exp + 31)
    with pytest.raises(IdentityError, match="expired"):
        late.verify(token)
    within = OidcVerifier(OidcSettings(issuer=ISSUER, leeway_s=30), clock=lambda: exp + 29)
    assert within.verify(token).email == KAWAGOE_OFFICER[2]  # clock skew within leeway
    with pytest.raises(HTTPException) as caught:
        StaffIdentity(oidc=late).principal(f"Bearer {token}")
    assert caught.value.status_code == 401

    # signed by another key under the realm's key id
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims, "groups": ["/entities/saitama-pref"]}, forger,
                        algorithm="RS256", headers={"kid": str(header["kid"])})
    assert "signature" in refused_401(site, forged)
    # the realm's signature over other claims
    head, _, sig = token.split(".")
    other = base64.urlsafe_b64encode(json.dumps(
        {**claims, "groups": ["/entities/saitama-pref"]}).encode()).rstrip(b"=").decode()
    assert "signature" in refused_401(site, f"{head}.{other}.{sig}")
    # no signature at all
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    assert "algorithm" in refused_401(site, unsigned)
    # the realm's own token, meant for another application
    assert "audience" in refused_401(site, client_token(*OTHER_APP))
    assert site.audit_rows()[0].actor == KAWAGOE_OFFICER[2]  # the one accepted request


def test_a_rotated_signing_key_is_picked_up(site: Site) -> None:
    before = login(*SAITAMA_APPROVER[:2])
    assert site.http.get("/contracts", headers=site.as_(before)).status_code == 200
    fetches = site.verifier.jwks_fetches
    component = add_signing_key()
    try:
        after = login(*SAITAMA_APPROVER[:2])
        assert _segments(after)[0]["kid"] != _segments(before)[0]["kid"]
        assert site.http.get("/contracts", headers=site.as_(after)).status_code == 200
        assert site.verifier.jwks_fetches == fetches + 1  # refetched once, on the new kid
        # the old key still verifies its tokens while the realm keeps it
        assert site.http.get("/contracts", headers=site.as_(before)).status_code == 200
    finally:
        remove_signing_key(component)


def test_an_unknown_key_id_refetches_at_most_once_per_interval(realm: None) -> None:
    now = [1000.0]
    verifier = OidcVerifier(OidcSettings(issuer=ISSUER, jwks_min_refetch_s=30),
                            monotonic=lambda: now[0])
    token = client_token(*KAWAGOE_BATCH)
    _, claims = _segments(token)
    assert verifier.verify(token).entities == {"kawagoe-city"}
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown = jwt.encode(claims, forger, algorithm="RS256", headers={"kid": "no-such-key"})
    for _ in range(5):
        with pytest.raises(IdentityError, match="not among"):
            verifier.verify(unknown)
    assert verifier.jwks_fetches == 1  # a flood of unknown kids does not hammer the provider
    now[0] += 31
    with pytest.raises(IdentityError, match="not among"):
        verifier.verify(unknown)
    assert verifier.jwks_fetches == 2
    assert Role.CONTRACT_OFFICER in verifier.verify(token).roles
    assert time.time() < float(claims["exp"])  # type: ignore[arg-type]
