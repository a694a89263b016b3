"""CloudSign's webhook router on its own (CSW-1 … CSW-3): the secret path token, the
source allow-list, body size and nesting limits, one message id per (document, status),
and the weak-token check a production start reads."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from connectors.cloudsign.inbound import (
    WEBHOOK_PATH,
    json_depth_within,
    notification_id,
    webhook_router,
)
from connectors.cloudsign.settings import DEFAULT_WEBHOOK_TOKEN, CloudSignSettings

TOKEN = "k" * 40
DOC = "0591aeea-e2d4-417b-97f9-3b1a3751bc19"


def client(**settings: object) -> tuple[TestClient, list[tuple[str, int]]]:
    seen: list[tuple[str, int]] = []

    async def on_document(document_id: str, status: int) -> bool:
        seen.append((document_id, status))
        return document_id == DOC

    app = FastAPI()
    app.include_router(webhook_router(CloudSignSettings(
        webhook_token=TOKEN, **settings), on_document))  # type: ignore[arg-type]
    return TestClient(app), seen


def test_only_the_secret_path_is_served() -> None:
    http, seen = client()
    body = {"documentID": DOC, "status": 2, "userID": "u", "email": "e", "text": "t"}
    assert http.post(f"{WEBHOOK_PATH}/{TOKEN}", json=body).json() == {"received": DOC}
    for wrong in ("k" * 39, "k" * 41, DEFAULT_WEBHOOK_TOKEN, "x"):
        answer = http.post(f"{WEBHOOK_PATH}/{wrong}", json=body)
        assert answer.status_code == 404
        assert answer.json()["violations"][0]["rule_id"] == "CSW-1"
    assert http.post(WEBHOOK_PATH, json=body).status_code == 404
    assert seen == [(DOC, 2)]


def test_a_document_not_the_hubs_is_ignored() -> None:
    http, _ = client()
    other = {"documentID": "made-by-hand", "status": 2}
    assert http.post(f"{WEBHOOK_PATH}/{TOKEN}", json=other).json() == {"ignored": "made-by-hand"}


def test_the_source_allow_list() -> None:
    http, seen = client(webhook_sources=("203.0.113.0/24",))
    answer = http.post(f"{WEBHOOK_PATH}/{TOKEN}", json={"documentID": DOC, "status": 2})
    assert answer.status_code == 404  # the test client is not in 203.0.113.0/24
    assert seen == []
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        CloudSignSettings(webhook_sources=("not-a-network",))  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "status", "rule"), [
    (b"[" * 100_000 + b"]" * 100_000, 413, "CSW-2"),
    (b"[" * 9 + b"]" * 9, 400, "CSW-3"),
    (b'{"documentID": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "CSW-3"),
    (b"not json", 400, "CSW-3"),
    (b"[]", 400, "CSW-3"),
    (b'{"documentID": "../etc", "status": 2}', 400, "CSW-3"),
    (b'{"documentID": "abc", "status": true}', 400, "CSW-3"),
    (b'{"documentID": "abc", "status": 100}', 400, "CSW-3"),
    (b'{"documentID": "abc"}', 400, "CSW-3"),
    (b"\xff\xfe", 400, "CSW-3"),
])
def test_bad_bodies_are_4xx_never_500(body: bytes, status: int, rule: str) -> None:
    http, seen = client()
    answer = http.post(f"{WEBHOOK_PATH}/{TOKEN}", content=body,
                       headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["violations"][0]["rule_id"]) == (status, rule)
    violation = answer.json()["violations"][0]
    assert all(violation[k] for k in ("message_ja", "message_en", "next_step_ja",
                                      "next_step_en"))
    assert seen == []


def test_a_status_given_as_digits_is_read() -> None:
    http, seen = client()
    http.post(f"{WEBHOOK_PATH}/{TOKEN}", content=json.dumps({"documentID": DOC, "status": "3"}))
    assert seen == [(DOC, 3)]


def test_depth_ignores_brackets_in_strings() -> None:
    assert json_depth_within(b'{"a": "[[[[[[[[[[[[", "b": [1, {"c": "\\"]"}]}', 3)
    assert not json_depth_within(b'{"a": [[[1]]]}', 3)


def test_one_message_id_per_document_and_status_under_a_secret() -> None:
    key = TOKEN.encode()
    assert notification_id(key, DOC, 2) == notification_id(key, DOC, 2)
    assert notification_id(key, DOC, 2) != notification_id(key, DOC, 3)
    assert notification_id(key, DOC, 2) != notification_id(b"other", DOC, 2)
    assert isinstance(notification_id(key, DOC, 2), uuid.UUID)


def test_weak_tokens_are_named_for_a_production_check() -> None:
    assert CloudSignSettings().webhook_token_weak()  # the embedded default
    assert CloudSignSettings(webhook_token="short").webhook_token_weak()  # type: ignore[arg-type]
    assert not CloudSignSettings(webhook_token=TOKEN).webhook_token_weak()  # type: ignore[arg-type]
    assert TOKEN not in repr(CloudSignSettings(webhook_token=TOKEN))  # type: ignore[arg-type]
