"""The staff's registrations and dead letters (hub/staff_queries.py, docs/identity.md), with
tokens of the built-in local user store, real Kafka dead-letter topics and PostgreSQL:
each caller sees and acts only on their own entity's registrations and dead letters,
with the role each route needs (IAM-2), another entity's row is never listed and is
refused with IAM-3, a dead letter whose entity cannot be told is an installation-wide
administrator's only, and a replay goes back to its topic once, written once to the
audit trail with the person."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.delivery import H_REPLAY
from hub.identity import LocalUsers, staff_identity
from hub.settings import KafkaSettings, Settings, StaffSettings
from hub.staff_api import staff_router
from hub.staff_queries import KafkaDeadLetters
from schemas.topics import KeyKind, TopicSpec
from schemas.wire import header
from tests.support.kafka import create_topics, publish_raw, read_all
from tests.support.staff import registration_answers

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"
USERS = {  # name: (entities, role)
    "kawagoe-keiyaku": (["kawagoe-city"], "contract-officer"),
    "kawagoe-kanri": (["kawagoe-city"], "admin"),
    "kawagoe-kansa": (["kawagoe-city"], "auditor"),
    "saitama-shonin": (["saitama-pref"], "approver"),
    "saitama-kanri": (["saitama-pref"], "admin"),
    "hub-kanri": (["*"], "admin"),
}


@dataclass
class Site:
    http: TestClient
    engine: Engine
    spec: TopicSpec
    bootstrap: str
    tokens: dict[str, dict[str, str]]

    def audit_rows(self, action: str) -> list[audit.AuditRecord]:
        with Session(self.engine) as db:
            return [r for r in reversed(audit.rows(db, limit=1000)) if r.action == action]


def email(name: str) -> str:
    return f"{name}@example.lg.jp"


@pytest.fixture
def site(engine: Engine, tmp_path: Path, kafka_bootstrap: str, unique: str) -> Iterator[Site]:
    users_file = tmp_path / "staff-users.json"
    users = LocalUsers(users_file)
    for name, (entities, role) in USERS.items():
        users.add(name, PASSWORD, email=email(name), entities=entities, roles=[role])
    spec = TopicSpec(f"test.staffdlq.{unique}", "staff dead letters", KeyKind.CASE,
                     partitions=1)
    asyncio.run(create_topics(kafka_bootstrap, [spec]))
    letters = [orjson.dumps({"procuring_entity": e, "type": "mail.requested", "payload": {}})
               for e in ("kawagoe-city", "saitama-pref")] + [b"\xff not a message"]
    asyncio.run(publish_raw(kafka_bootstrap, spec.dlq, [(b"k", value, [
        ("x-dlq-original-topic", spec.name.encode()), ("x-dlq-consumer", b"connector.mail"),
        ("x-dlq-reason", b"rejected"), ("x-dlq-rule-ids", b"IAM-4"),
        ("x-dlq-at", b"2026-06-01T09:00:00+00:00")]) for value in letters]))
    source = KafkaDeadLetters(Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap)),
                              topics=[spec.dlq])
    app = FastAPI()
    app.include_router(staff_router(engine, staff_identity(
        StaffSettings(users_file=users_file), tmp_path), dead_letters=source))
    with TestClient(app) as http:
        tokens = {}
        for name in USERS:
            answer = http.post("/auth/token", data={"grant_type": "password",
                                                    "username": name, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            tokens[name] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        yield Site(http, engine, spec, kafka_bootstrap, tokens)


def refusal(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    (found,) = response.json()["detail"]["violations"]
    assert all(found[k] for k in ("message_ja", "message_en", "next_step_ja", "next_step_en"))
    return str(found["rule_id"])


def test_registrations_are_the_callers_entitys_with_each_rejections_rule(site: Site) -> None:
    done = registration_answers(site.engine, "kawagoe-city")
    rejected = registration_answers(site.engine, "kawagoe-city", rejected="REG-3")
    saitama = registration_answers(site.engine, "saitama-pref", rejected="REG-5")

    for name in ("kawagoe-keiyaku", "kawagoe-kanri", "kawagoe-kansa"):
        listed = site.http.get("/staff/registrations", headers=site.tokens[name])
        assert listed.status_code == 200, listed.text
        rows = {r["request_id"]: r for r in listed.json()}
        assert set(rows) == {done, rejected}, name
        assert (rows[rejected]["status"], rows[rejected]["rule_ids"]) == ("rejected", ["REG-3"])
        assert (rows[done]["status"], rows[done]["rule_ids"]) == ("done", [])
        assert {r["entity"] for r in rows.values()} == {"kawagoe-city"}
    (theirs,) = site.http.get("/staff/registrations", headers=site.tokens["saitama-kanri"]
                              ).json()
    assert (theirs["request_id"], theirs["rule_ids"]) == (saitama, ["REG-5"])
    everyone = site.http.get("/staff/registrations", headers=site.tokens["hub-kanri"]).json()
    assert {r["request_id"] for r in everyone} == {done, rejected, saitama}

    assert refusal(site.http.get("/staff/registrations",
                                 headers=site.tokens["saitama-shonin"]), 403) == "IAM-2"
    assert refusal(site.http.get("/staff/registrations"), 401) == "IAM-1"
    listed = site.audit_rows("registrations.list")
    assert [(r.actor, r.outcome) for r in listed] == [
        (email("kawagoe-keiyaku"), "ok"), (email("kawagoe-kanri"), "ok"),
        (email("kawagoe-kansa"), "ok"), (email("saitama-kanri"), "ok"),
        (email("hub-kanri"), "ok"), (email("saitama-shonin"), "denied")]


def test_dead_letters_are_the_callers_entitys_and_need_their_role(site: Site) -> None:
    def listed(name: str) -> list[tuple[str | None, str]]:
        answer = site.http.get("/staff/dead-letters", headers=site.tokens[name])
        assert answer.status_code == 200, answer.text
        return [(d["entity"], d["id"]) for d in answer.json()]

    dlq = site.spec.dlq
    assert listed("kawagoe-kanri") == [("kawagoe-city", f"{dlq}:0:0")]
    assert listed("kawagoe-kansa") == [("kawagoe-city", f"{dlq}:0:0")]
    assert listed("saitama-kanri") == [("saitama-pref", f"{dlq}:0:1")]
    # The unparseable one may be any entity's: the installation's administrator only.
    assert listed("hub-kanri") == [("kawagoe-city", f"{dlq}:0:0"),
                                   ("saitama-pref", f"{dlq}:0:1"), (None, f"{dlq}:0:2")]
    (one,) = site.http.get("/staff/dead-letters", headers=site.tokens["kawagoe-kanri"]).json()
    assert (one["topic"], one["consumer"], one["reason"], one["rule_ids"], one["at"]) == (
        site.spec.name, "connector.mail", "rejected", ["IAM-4"], "2026-06-01T09:00:00+00:00")
    for name in ("kawagoe-keiyaku", "saitama-shonin"):
        assert refusal(site.http.get("/staff/dead-letters", headers=site.tokens[name]),
                       403) == "IAM-2"


def test_a_replay_is_the_entitys_administrators_and_is_audited_once(site: Site) -> None:
    dlq = site.spec.dlq

    def replay(name: str, offset: int) -> httpx.Response:
        return site.http.post(f"/staff/dead-letters/{dlq}:0:{offset}/replay",
                              headers=site.tokens[name])

    assert refusal(replay("kawagoe-kansa", 0), 403) == "IAM-2"
    assert refusal(replay("kawagoe-keiyaku", 0), 403) == "IAM-2"
    assert refusal(replay("kawagoe-kanri", 1), 403) == "IAM-3"  # saitama-pref's
    assert refusal(replay("kawagoe-kanri", 2), 403) == "IAM-3"  # no entity to tell
    assert refusal(replay("kawagoe-kanri", 9), 404) == "OPS-3"
    not_a_dead_letter_topic = site.http.post(f"/staff/dead-letters/{site.spec.name}:0:0/replay",
                                             headers=site.tokens["kawagoe-kanri"])
    assert refusal(not_a_dead_letter_topic, 404) == "OPS-3"
    done = replay("kawagoe-kanri", 0)
    assert done.status_code == 200, done.text
    assert done.json()["entity"] == "kawagoe-city"

    (back,) = asyncio.run(read_all(site.bootstrap, site.spec.name, expect=1))
    assert orjson.loads(back.value)["procuring_entity"] == "kawagoe-city"
    assert header(list(back.headers), H_REPLAY) == f"{dlq}/0/0"
    steps = site.audit_rows("dlq.replay")
    assert [(r.actor, r.outcome, r.entity, r.target) for r in steps] == [
        (email("kawagoe-kansa"), "denied", "kawagoe-city", f"{dlq}:0:0"),
        (email("kawagoe-keiyaku"), "denied", "kawagoe-city", f"{dlq}:0:0"),
        (email("kawagoe-kanri"), "denied", "saitama-pref", f"{dlq}/0/1"),
        (email("kawagoe-kanri"), "denied", "", f"{dlq}/0/2"),
        (email("kawagoe-kanri"), "refused", "kawagoe-city", f"{dlq}:0:9"),
        (email("kawagoe-kanri"), "refused", "kawagoe-city", f"{site.spec.name}:0:0"),
        (email("kawagoe-kanri"), "ok", "kawagoe-city", f"{dlq}/0/0"),
    ]
    assert steps[-1].role == "admin"
    with Session(site.engine) as db:
        assert audit.verify(db).ok
