"""デッドレター in the staff console against the real Kafka broker: an administrator
filters the dead letters by reason, opens one (headers, history, what to do), confirms
and replays it; the record is back on its original topic marked as a replay, once, and the
replay is in the audit trail with the person, as ``hub dlq replay`` writes it. Only
administrators reach the pages (IAM-2); one of some entities sees only their letters."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import audit
from hub.console import ConsoleConfig, console_router
from hub.contract.archive_api import ArchiveService
from hub.identity import LocalUsers, staff_identity
from hub.settings import KafkaSettings, Settings, StaffSettings
from tests.support import ledger
from tests.support.kafka import create_topics, publish_raw, read_all

pytestmark = [pytest.mark.kafka]

PASSWORD = "correct horse battery staple"
ADMIN = "kanri@city.kawagoe.example.jp"


def _letter(topic: str, entity: str, reason: str, rule: str, offset: int,
            ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    value = json.dumps({"procuring_entity": entity, "payload": {"password": "hunter2"}})
    return (b"k", value.encode(), [
        ("x-message-type", b"ledger.entry-requested"),
        ("x-dlq-original-topic", topic.encode()), ("x-dlq-reason", reason.encode()),
        ("x-dlq-original-partition", b"0"), ("x-dlq-original-offset", str(offset).encode()),
        ("x-dlq-consumer", b"ledger"), ("x-dlq-rule-ids", rule.encode()),
        ("x-dlq-attempts", b"3"), ("x-dlq-at", f"2026-12-0{offset}T10:00:00+00:00".encode()),
        ("x-dlq-history", json.dumps([{"attempt": 1, "error": "timeout"}]).encode()),
        ("x-dlq-text-ja", "相手先が応答しません。".encode()),
        ("x-dlq-text-en", b"The peer does not answer.")])


@pytest.fixture
def site(kafka_bootstrap: str, unique: str, engine: Engine,
         tmp_path: Path) -> Iterator[tuple[TestClient, str, Engine]]:
    spec = ledger.topics(f"t{unique}.console")[0]
    asyncio.run(create_topics(kafka_bootstrap, [spec]))
    asyncio.run(publish_raw(kafka_bootstrap, spec.dlq, [
        _letter(spec.name, "kawagoe-city", "peer-unavailable", "WIN-3", 1),
        _letter(spec.name, "kawagoe-city", "not-envelope", "", 2),
        _letter(spec.name, "saitama-pref", "peer-unavailable", "WIN-3", 3)]))
    users = LocalUsers(tmp_path / "staff-users.json")
    users.add("kanri", PASSWORD, email=ADMIN, entities=["kawagoe-city"], roles=["admin"])
    users.add("shonin", PASSWORD, email="shonin@city.kawagoe.example.jp",
              entities=["kawagoe-city"], roles=["approver"])
    identity = staff_identity(StaffSettings(users_file=users.path), tmp_path)
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap))
    app = FastAPI()
    app.include_router(console_router(engine, identity, ArchiveService(engine, ()),
                                      ConsoleConfig(tmp_path, kafka=settings,
                                                    dlq_topics=(spec.dlq,))))
    with TestClient(app, base_url="http://127.0.0.1") as http:
        yield http, spec.name, engine


def _login(http: TestClient, username: str) -> None:
    page = http.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    http.post("/console/login", data={"csrf": token.group(1), "username": username,
                                      "password": PASSWORD})


def test_an_administrator_filters_shows_confirms_and_replays_one(
        site: tuple[TestClient, str, Engine], kafka_bootstrap: str) -> None:
    http, topic, engine = site
    _login(http, "kanri")
    listed = http.get("/console/dead-letters")
    assert listed.status_code == 200
    assert "saitama-pref" not in listed.text.split('id="letters"')[1]  # not their entity
    assert len(re.findall(r"/console/dead-letters/letter\?ref=", listed.text)) == 2
    by_reason = http.get("/console/dead-letters", params={"reason": "peer-unavailable"})
    refs = re.findall(r'letter\?ref=([^"&]+)"', by_reason.text)
    assert len(refs) == 1  # one key: one partition, kawagoe-city's first letter
    assert re.fullmatch(re.escape(topic) + r"\.dlq/\d/0", refs[0])
    ref = refs[0]
    by_rule = http.get("/console/dead-letters", params={"rule": "WIN-3", "since": "2026-12-02"})
    assert "letter?ref=" not in by_rule.text  # WIN-3 of kawagoe-city is of 12-01
    shown = http.get("/console/dead-letters/letter", params={"ref": ref})
    assert shown.status_code == 200
    assert "相手先が応答しません。" in shown.text
    assert "The peer does not answer." in shown.text
    assert "timeout" in shown.text  # the history
    assert "hunter2" not in shown.text  # secrets are redacted
    assert 'id="replay"' not in shown.text  # the confirmation step comes first
    confirm = http.get("/console/dead-letters/letter", params={"ref": ref, "confirm": "1"})
    token = re.search(r'name="csrf" value="([^"]+)"', confirm.text)
    assert token
    assert 'id="replay"' in confirm.text
    forged = http.post("/console/dead-letters/replay", data={"ref": ref, "csrf": "x"})
    assert forged.status_code == 403
    assert "IAM-5" in forged.text
    done = http.post("/console/dead-letters/replay", data={"ref": ref, "csrf": token.group(1)})
    assert done.status_code == 200, done.text
    assert 'id="replayed"' in done.text
    back = asyncio.run(read_all(kafka_bootstrap, topic, expect=1))
    assert [dict(r.headers).get("x-hub-replay-of") for r in back] == [ref.encode()]
    assert not any(k.startswith("x-dlq-") for k, _ in back[0].headers)
    with Session(engine) as db:
        rows = [r for r in audit.rows(db, limit=100) if r.action == "dlq.replay"]
    assert [(r.actor, r.role, r.entity, r.target, r.detail) for r in rows] == [
        (ADMIN, "admin", "kawagoe-city", ref, topic)]
    again = http.get("/console/dead-letters", params={"reason": "peer-unavailable"}).text
    assert ADMIN in again  # the list shows who replayed it


def test_only_administrators_and_only_their_entities(
        site: tuple[TestClient, str, Engine]) -> None:
    http, _, _ = site
    _login(http, "shonin")
    refused = http.get("/console/dead-letters")
    assert refused.status_code == 403
    assert "IAM-2" in refused.text
    assert 'href="/console/dead-letters"' not in http.get("/console/dashboard").text
    http.cookies.clear()
    _login(http, "kanri")
    (mine, _) = re.findall(r'letter\?ref=([^"&]+)"', http.get("/console/dead-letters").text)
    other = http.get("/console/dead-letters/letter", params={"ref": mine[:-1] + "2"})
    assert other.status_code == 404
    assert "OPS-3" in other.text


def test_a_filtered_set_is_replayed_once_each_the_others_untouched(
        site: tuple[TestClient, str, Engine], kafka_bootstrap: str) -> None:
    """Five letters in the topic: kawagoe-city's three of reason peer-unavailable are
    replayed by "replay all shown"; its not-envelope one and saitama-pref's stay put; a
    second click replays none of them again."""
    http, topic, engine = site
    asyncio.run(publish_raw(kafka_bootstrap, f"{topic}.dlq", [
        _letter(topic, "kawagoe-city", "peer-unavailable", "WIN-3", 4),
        _letter(topic, "kawagoe-city", "peer-unavailable", "WIN-2", 5)]))
    _login(http, "kanri")
    wanted = {"reason": "peer-unavailable"}
    listed = http.get("/console/dead-letters", params=wanted).text
    refs = set(re.findall(r'letter\?ref=([^"&]+)"', listed))
    assert len(refs) == 3
    assert 'id="replay-all"' in listed
    confirm = http.get("/console/dead-letters/replay-set", params=wanted)
    assert confirm.status_code == 200, confirm.text
    assert "peer-unavailable" in confirm.text.split('id="filter"')[1].split("</dl>")[0]
    assert "3 件" in confirm.text.split('id="replay-count"')[1].split("</p>")[0]
    assert set(re.findall(r'<td class="ref">([^<]+)</td>', confirm.text)) == refs
    token = re.search(r'name="csrf" value="([^"]+)"', confirm.text)
    assert token
    forged = http.post("/console/dead-letters/replay-set", data={**wanted, "csrf": "x"})
    assert forged.status_code == 403
    assert "IAM-5" in forged.text
    assert asyncio.run(read_all(kafka_bootstrap, topic)) == []
    stale = http.post("/console/dead-letters/replay-set",
                      data={**wanted, "csrf": token.group(1), "n": "2"})
    assert 'id="changed"' in stale.text  # not the set confirmed: asked again
    assert asyncio.run(read_all(kafka_bootstrap, topic)) == []
    assert 'name="n" value="3"' in confirm.text
    done = http.post("/console/dead-letters/replay-set",
                     data={**wanted, "csrf": token.group(1), "n": "3"})
    assert done.status_code == 200, done.text
    assert 'id="replayed-set"' in done.text
    back = asyncio.run(read_all(kafka_bootstrap, topic))
    assert sorted(dict(r.headers)["x-hub-replay-of"].decode() for r in back) == sorted(refs)
    with Session(engine) as db:
        rows = [r for r in audit.rows(db, limit=100) if r.action == "dlq.replay"]
    assert sorted((r.target, r.actor, r.entity) for r in rows) == sorted(
        (ref, ADMIN, "kawagoe-city") for ref in refs)
    again = http.post("/console/dead-letters/replay-set",
                      data={**wanted, "csrf": token.group(1), "n": "3"})
    assert again.status_code == 200
    assert 'id="nothing"' in again.text  # all replayed already
    assert len(asyncio.run(read_all(kafka_bootstrap, topic))) == 3  # none twice
    with Session(engine) as db:
        assert sum(r.action == "dlq.replay" for r in audit.rows(db, limit=100)) == 3
    bad = http.post("/console/dead-letters/replay-set",
                    data={"since": "yesterday", "csrf": token.group(1)})
    assert bad.status_code == 422
    assert "OPS-4" in bad.text
    shonin = TestClient(http.app, base_url="http://127.0.0.1")
    _login(shonin, "shonin")
    refused = shonin.post("/console/dead-letters/replay-set", data={"csrf": "x"})
    assert refused.status_code == 403
    assert "IAM-2" in refused.text
    assert len(asyncio.run(read_all(kafka_bootstrap, topic))) == 3
