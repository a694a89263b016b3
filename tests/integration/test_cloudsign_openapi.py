"""CloudSign's published OpenAPI document (0.31.0, tests/data/cloudsign/) judges the
connector and the reference peer, so that they cannot share a mistake unnoticed.

- Every request the connector sends in a whole send → conclude flow and a rejection,
  and every answer the peer gives, is valid against the spec (openapi-core).
- The peer's refusals (missing or bad token, unknown document, non-PDF, no ``%%EOF``,
  too large, not a draft, bad client_id) are the spec's statuses with its errorModel.
- No valid request is refused: each variant the spec allows (optional fields left out,
  its boolean spellings, an upload without a name) is answered 2xx, and so are the
  create, update and add-recipient forms hypothesis draws from what the spec allows.
- A connector that sends with ``PUT`` or adds a field the spec does not have is
  caught by the same check.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from reportlab.pdfgen import canvas

from connectors._shared import PermanentPeerError
from connectors.cloudsign import CloudSignConnector, CloudSignSettings
from connectors.cloudsign.adapter import CloudSignAdapter
from connectors.cloudsign.mapping import PeerDocument
from connectors.cloudsign.peer import CloudSignPeer
from schemas.cloudsign import (
    ContractConcluded,
    ContractDeclined,
    ContractParticipant,
    ContractSendRequested,
)
from tests.support.cloudsign_spec import SPEC_PATH, SpecRecorder, check

CLIENT_ID = "spec-cloudsign-client"


def pdf(text: str = "請負契約書") -> bytes:
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(60, 780, text)
    page.save()
    return buffer.getvalue()


@pytest.fixture
def peer() -> Iterator[CloudSignPeer]:
    server = CloudSignPeer(client_id=CLIENT_ID)
    server.start()
    yield server
    server.stop()


def settings(peer: CloudSignPeer, tmp_path: Path) -> CloudSignSettings:
    return CloudSignSettings(base_url=peer.url, client_id=CLIENT_ID,  # type: ignore[arg-type]
                             document_dir=tmp_path, retry_attempts=1)


@pytest.fixture
async def recorded(peer: CloudSignPeer, tmp_path: Path
                   ) -> AsyncIterator[tuple[CloudSignConnector, SpecRecorder]]:
    recorder = SpecRecorder()
    config = settings(peer, tmp_path)
    conn = CloudSignConnector(config, adapter=CloudSignAdapter(
        config, client=recorder.client(peer.url)))
    yield conn, recorder
    await conn.aclose()


def command(conn: CloudSignConnector) -> ContractSendRequested:
    return ContractSendRequested(
        request_id=uuid.uuid4(), case_id="R8-0300", title="市道1号線舗装工事 請負契約書",
        message="ご確認をお願いします。",
        files=(conn.store.put("請負契約書.pdf", pdf()), conn.store.put("請書.pdf", pdf("請書"))),
        participants=(
            ContractParticipant(name="足利 一郎", email="ichiro@example.co.jp",
                                organization="〇〇建設株式会社"),
            ContractParticipant(name="契約 花子", email="keiyaku@city.example.jp.test"),
        ))


def test_the_vendored_spec_is_the_published_one() -> None:
    text = SPEC_PATH.read_text(encoding="utf-8")
    assert "version: 0.31.0" in text
    assert "書類を送信またはリマインド" in text  # POST /documents/{documentID}


async def test_every_request_and_answer_of_a_conclusion_follows_the_spec(
        peer: CloudSignPeer, recorded: tuple[CloudSignConnector, SpecRecorder]) -> None:
    conn, recorder = recorded
    sent = await conn.send(command(conn))
    assert await conn.conclude(sent.document_id, "R8-0300") is None
    peer.agree_all(sent.document_id, notify=False)
    assert isinstance(await conn.conclude(sent.document_id, "R8-0300", 2), ContractConcluded)
    assert recorder.violations() == []
    assert recorder.operations() == {
        ("POST /token", 200), ("POST /documents", 200), ("POST /documents/{id}/files", 200),
        ("POST /documents/{id}/participants", 200), ("POST /documents/{id}", 200),
        ("GET /documents/{id}", 200), ("GET /documents/{id}/files/{id}", 200),
        ("GET /documents/{id}/certificate", 200)}


async def test_a_rejection_and_a_renewed_token_follow_the_spec(
        peer: CloudSignPeer, recorded: tuple[CloudSignConnector, SpecRecorder]) -> None:
    conn, recorder = recorded
    sent = await conn.send(command(conn))
    peer.expire_tokens()
    with pytest.raises(Exception, match="access token refused"):
        await conn.conclude(sent.document_id, "R8-0300")  # 401, once (retry_attempts=1)
    peer.reject(sent.document_id, notify=False)
    assert isinstance(await conn.conclude(sent.document_id, "R8-0300", 3), ContractDeclined)
    assert recorder.violations() == []
    assert ("GET /documents/{id}", 401) in recorder.operations()


class PutSending(CloudSignAdapter):
    async def send(self, document_id: str) -> PeerDocument:
        return await self._document("PUT", f"/documents/{document_id}", "send")


class ExtraField(CloudSignAdapter):
    async def add_participant(self, document_id: str, form: dict[str, str]) -> PeerDocument:
        return await super().add_participant(document_id, {**form, "role": "signer"})


@pytest.mark.parametrize("adapter", [PutSending, ExtraField])
async def test_a_connector_off_the_spec_is_caught(
        peer: CloudSignPeer, tmp_path: Path, adapter: type[CloudSignAdapter]) -> None:
    recorder = SpecRecorder()
    config = settings(peer, tmp_path)
    conn = CloudSignConnector(config, adapter=adapter(config, client=recorder.client(peer.url)))
    try:
        if adapter is PutSending:
            with pytest.raises(PermanentPeerError, match="status 0"):
                await conn.send(command(conn))
        else:  # the peer ignores a field it does not know, as servers do
            await conn.send(command(conn))
    finally:
        await conn.aclose()
    problems = recorder.violations()
    if adapter is PutSending:
        (put,) = [e for e in recorder.exchanges if e.method == "PUT"]
        assert put.problems == []  # PUT is in the spec: it updates, and answers status 0
        assert peer.document(peer.document_ids()[0])["status"] == 0
    else:
        assert any("participants" in p and "request" in p for p in problems), problems


async def raw(peer: CloudSignPeer) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async def keep(request: httpx.Request) -> None:
        await request.aread()  # multipart bodies stream; keep them to check

    async with httpx.AsyncClient(base_url=peer.url, timeout=5.0,
                                 event_hooks={"request": [keep]}) as client:
        token = (await client.post("/token", data={"client_id": CLIENT_ID})).json()
        yield client, {"Authorization": f"Bearer {token['access_token']}"}


def judged(response: httpx.Response, *, answer_only: bool = False) -> httpx.Response:
    assert check(response.request, response, answer_only=answer_only) == [], response.text
    return response


async def test_refusals_are_the_specs_statuses_with_its_error_model(
        peer: CloudSignPeer) -> None:
    async for client, auth in raw(peer):
        doc = judged(await client.post("/documents", data={"title": "t"}, headers=auth)).json()
        cases: list[tuple[httpx.Response, int, str]] = [
            (await client.post("/token", data={"client_id": ""}), 400, "invalid_request"),
            (await client.post("/token", data={"client_id": "nope"}), 400, "invalid_client"),
            (await client.get(f"/documents/{doc['id']}"), 400, "bad_request"),
            (await client.get(f"/documents/{doc['id']}",
                              headers={"Authorization": "Bearer " + "0" * 36}),
             401, "unauthorized"),
            (await client.get(f"/documents/{uuid.uuid4()}", headers=auth), 404, "not_found"),
            (await client.post(f"/documents/{doc['id']}", headers=auth), 400, "bad_request"),
            (await client.post(f"/documents/{doc['id']}/files", headers=auth,
                               files={"uploadfile": ("a.txt", b"hello", "text/plain")}),
             415, "unsupported_media_type"),
            (await client.post(f"/documents/{doc['id']}/files", headers=auth,
                               data={"name": "x"}), 415, "unsupported_media_type"),
            (await client.post(f"/documents/{doc['id']}/files", headers=auth,
                               files={"uploadfile": ("a.pdf", pdf()[:-10], "application/pdf")}),
             400, "bad_request"),
            (await client.post(f"/documents/{doc['id']}/files", headers=auth,
                               files={"uploadfile": ("a.pdf", b"", "application/pdf")}),
             400, "bad_request"),
            (await client.post(f"/documents/{doc['id']}/participants", headers=auth,
                               data={"email": "a@example.co.jp"}), 400, "bad_request"),
            (await client.post(f"/documents/{doc['id']}/participants", headers=auth,
                               data={"name": "x", "email": "not-an-address"}),
             400, "bad_request"),
        ]
        big = b"%PDF-1.4\n" + b"0" * (20 * 1024 * 1024) + b"\n%%EOF\n"
        cases.append((await client.post(f"/documents/{doc['id']}/files", headers=auth,
                                        files={"uploadfile": ("big.pdf", big,
                                                              "application/pdf")}),
                      413, "too_large_request"))
        peer.disable_client()
        cases.append((await client.post("/token", data={"client_id": CLIENT_ID}),
                      403, "forbidden"))
        peer.disable_client(False)
        for response, status, code in cases:
            assert (response.status_code, response.json()["error"]) == (status, code), \
                response.request.url
            assert set(response.json()) == {"error", "message"}
            judged(response, answer_only=True)
        await client.post(f"/documents/{doc['id']}/participants", headers=auth,
                          data={"name": "受信者", "email": "r@example.co.jp"})
        await client.post(f"/documents/{doc['id']}/files", headers=auth,
                          files={"uploadfile": ("a.pdf", pdf(), "application/pdf")})
        judged(await client.post(f"/documents/{doc['id']}", headers=auth))
        late = judged(await client.post(f"/documents/{doc['id']}/files", headers=auth,
                                         files={"uploadfile": ("b.pdf", pdf(),
                                                               "application/pdf")}))
        assert (late.status_code, late.json()["error"]) == (403, "not_acceptable")
        cert = judged(await client.get(f"/documents/{doc['id']}/certificate", headers=auth))
        assert cert.status_code == 404


async def test_the_document_limits_of_the_spec(peer: CloudSignPeer) -> None:
    """50 MB and 100 files a document."""
    async for client, auth in raw(peer):
        doc = (await client.post("/documents", headers=auth)).json()
        chunk = b"%PDF-1.4\n" + b"0" * (12 * 1024 * 1024) + b"\n%%EOF\n"
        answers = [await client.post(f"/documents/{doc['id']}/files", headers=auth,
                                     files={"uploadfile": ("p.pdf", chunk, "application/pdf")})
                   for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 400]
        small = (await client.post("/documents", headers=auth)).json()
        counts = [(await client.post(f"/documents/{small['id']}/files", headers=auth,
                                     files={"uploadfile": ("s.pdf", pdf(), "application/pdf")})
                   ).status_code for _ in range(101)]
        assert counts == [200] * 100 + [400]


VALID_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/documents", {}),
    ("POST", "/documents", {"data": {"title": "件名のみ"}}),
    ("POST", "/documents", {"data": {"title": "t", "note": "n", "message": "m",
                                     "can_transfer": "t", "private": "0"}}),
    ("PUT", "/documents/{id}", {"data": {"note": "メモ", "can_transfer": "TRUE"}}),
    ("PUT", "/documents/{id}", {}),
    ("POST", "/documents/{id}/participants", {"data": {"name": "名前", "email": "p@example.jp"}}),
    ("POST", "/documents/{id}/participants", {"data": {
        "name": "名前", "email": "q@example.jp", "organization": "会社", "language_code": "ja"}}),
    ("POST", "/documents/{id}/files", {"files": {"uploadfile": ("無題.pdf", None,
                                                                "application/pdf")}}),
    ("POST", "/documents/{id}/files", {"data": {"name": "契約書"},
                                       "files": {"uploadfile": ("c.pdf", None,
                                                                "application/pdf")}}),
    ("GET", "/documents/{id}", {}),
    ("POST", "/documents/{id}", {}),
    ("POST", "/documents/{id}", {}),  # a reminder
    ("GET", "/documents", {}),
    ("GET", "/documents", {"params": {"page": 1, "status": -1,
                                      "from": "2026-01-01T00:00:00.000000Z"}}),
    ("GET", "/documents", {"params": {"page": 7, "status": 1}}),  # past the end: empty
]


async def test_no_valid_request_is_refused(peer: CloudSignPeer) -> None:
    async for client, auth in raw(peer):
        doc = (await client.post("/documents", headers=auth)).json()
        for method, path, variant in VALID_VARIANTS:
            kwargs = dict(variant)
            if "files" in kwargs:
                name, _, kind = kwargs["files"]["uploadfile"]
                kwargs["files"] = {"uploadfile": (name, pdf(), kind)}
            response = await client.request(method, path.replace("{id}", doc["id"]),
                                            headers=auth, **kwargs)
            assert response.status_code == 200, (method, path, response.text)
            judged(response)
        draft = (await client.post("/documents", headers=auth)).json()
        deleted = await client.delete(f"/documents/{draft['id']}", headers=auth)
        assert judged(deleted).status_code == 204


def test_the_judge_refuses_what_the_old_peer_answered() -> None:
    """FastAPI's 422, a 401 from /token and a null ``processed_at`` are not the spec's."""
    token = httpx.Request("POST", "http://127.0.0.1/token", data={"client_id": "x"})
    get = httpx.Request("GET", f"http://127.0.0.1/documents/{uuid.uuid4()}",
                        headers={"Authorization": "Bearer " + "0" * 36})
    doc = {"id": str(uuid.uuid4()), "title": "t", "status": 1, "participants": [
        {"id": str(uuid.uuid4()), "email": "a@example.jp", "status": 0, "processed_at": None}]}
    for request, response in [
            (token, httpx.Response(401, json={"error": "invalid client_id"})),
            (get, httpx.Response(422, json={"detail": [{"loc": ["body"]}]})),
            (get, httpx.Response(200, json=doc))]:
        assert check(request, response, answer_only=True), response.status_code


_BOOLEANS = st.sampled_from(["true", "false", "1", "0", "t", "f", "T", "F", "TRUE", "FALSE",
                             "True", "False"])
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)


@hypothesis_settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(create=st.fixed_dictionaries({}, optional={
           "title": _TEXT, "note": _TEXT, "message": _TEXT,
           "can_transfer": _BOOLEANS, "private": _BOOLEANS}),
       person=st.fixed_dictionaries(
           {"name": st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                            min_size=1, max_size=64).filter(str.strip)},
           optional={"organization": st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                             max_size=64),
                     "language_code": st.sampled_from(["ja", "en", "zh-CHS", "zh-CHT"])}),
       local=st.from_regex(r"\A[a-z0-9][a-z0-9._+-]{0,20}\Z"))
def test_generated_valid_requests_are_answered_2xx_within_the_spec(
        peer: CloudSignPeer, create: dict[str, str], person: dict[str, str],
        local: str) -> None:
    """Hypothesis draws what the spec allows for creating a document, updating it and
    adding a recipient; the peer must accept each, and answer within the spec."""
    async def go() -> None:
        async for client, auth in raw(peer):
            made = judged(await client.post("/documents", data=create, headers=auth))
            assert made.status_code == 200, made.text
            doc_id = made.json()["id"]
            updated = judged(await client.put(f"/documents/{doc_id}", data=create,
                                              headers=auth))
            assert updated.status_code == 200, updated.text
            added = judged(await client.post(
                f"/documents/{doc_id}/participants", headers=auth,
                data={**person, "email": f"{local}@example.co.jp"}))
            assert added.status_code == 200, added.text

    asyncio.run(go())
