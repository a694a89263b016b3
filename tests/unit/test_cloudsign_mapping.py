"""CloudSign documentModel ↔ canonical contract messages, and the document store (CON-2, CON-5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.cloudsign.documents import DocumentTampered, FileDocumentStore
from connectors.cloudsign.mapping import (
    PeerFormatError,
    declined,
    document_form,
    document_from_peer,
    participant_form,
)
from schemas.cloudsign import (
    ContractParticipant,
    ContractSendRequested,
    DocumentRef,
    SignedDocumentStatus,
)
from schemas.mail import ATTACHMENT_LIMIT_BYTES

DOC = {"id": "0591aeea-e2d4-417b-97f9-3b1a3751bc19", "title": "市道1号線舗装工事 請負契約書",
       "status": 2, "note": "hub-case:R5-0001 hub-request:x", "can_transfer": True,
       "participants": [{"id": "p0", "email": "keiyaku@city.example.jp", "order": 0,
                         "status": 2, "brand_new_field": 1}],
       "files": [{"id": "f1", "name": "契約書.pdf", "order": 0, "total_pages": 3}]}


def test_document_model_is_read_leniently() -> None:
    doc = document_from_peer(DOC)
    assert doc.status is SignedDocumentStatus.CONCLUDED
    assert doc.files[0].name == "契約書.pdf"
    assert not hasattr(doc, "case_id")  # the case is found by the document id, not the note


def test_status_13_imported_documents_are_understood() -> None:
    assert document_from_peer({**DOC, "status": 13}).status is SignedDocumentStatus.IMPORTED


@pytest.mark.parametrize("body", [None, "x", {**DOC, "status": 9}, {**DOC, "id": "../etc"},
                                  {k: v for k, v in DOC.items() if k != "title"}])
def test_not_a_document(body: object) -> None:
    with pytest.raises(PeerFormatError):
        document_from_peer(body)


def test_request_forms_carry_the_case_and_the_parties_in_order() -> None:
    ref = DocumentRef(uri="file:///x", filename="契約書.pdf", size_bytes=1, sha256="a" * 64)
    command = ContractSendRequested(
        request_id=uuid.uuid4(), case_id="R5-0001", title="請負契約書", files=(ref,),
        participants=(ContractParticipant(name="足利 一郎", email="ichiro@example.co.jp",
                                          organization="〇〇建設株式会社"),))
    form = document_form(command)
    assert form["note"] == f"案件番号 R5-0001 依頼番号 {command.request_id}"  # found again by it
    assert participant_form(command.participants[0]) == {
        "email": "ichiro@example.co.jp", "name": "足利 一郎", "organization": "〇〇建設株式会社"}
    # optional and at most 64 characters in CloudSign's participantModel
    long = ContractParticipant(name="担当", email="a@example.co.jp", organization="株" * 100)
    assert participant_form(long)["organization"] == "株" * 64
    assert "organization" not in participant_form(
        ContractParticipant(name="担当", email="a@example.co.jp"))


def test_declined_names_con2_with_a_next_step() -> None:
    event = declined(document_from_peer({**DOC, "status": 3}), "R5-0001", datetime.now(UTC))
    assert event.violations[0].rule_id == "CON-2"
    assert event.violations[0].next_step_ja


def test_con4_attach_limit() -> None:
    small = DocumentRef(uri="file:///a", filename="a.pdf", size_bytes=ATTACHMENT_LIMIT_BYTES - 1,
                        sha256="a" * 64)
    large = small.model_copy(update={"size_bytes": ATTACHMENT_LIMIT_BYTES})
    assert small.attachable
    assert not large.attachable


def test_con4_one_limit_for_the_documents_and_the_mail_connector() -> None:
    """A 6.1 MB PDF is linked, not attached: 6 MB is 6,000,000 bytes, named once
    (the mail connector decides with the same ``attachable``, test_mail_connector)."""
    from schemas.mail import attachable

    doc = DocumentRef(uri="file:///a", filename="a.pdf", size_bytes=6_100_000, sha256="a" * 64)
    assert ATTACHMENT_LIMIT_BYTES == 6_000_000
    assert not doc.attachable
    assert not attachable(doc.size_bytes)


def test_store_is_content_addressed_and_notices_edits(tmp_path: Path) -> None:
    store = FileDocumentStore(tmp_path)
    ref = store.put("契約書.pdf", b"%PDF-1.7 signed")
    assert store.put("契約書(2).pdf", b"%PDF-1.7 signed").uri == ref.uri
    assert store.get(ref) == b"%PDF-1.7 signed"
    Path(ref.uri.removeprefix("file://")).write_bytes(b"%PDF-1.7 edited")
    with pytest.raises(DocumentTampered, match="CON-5"):
        store.get(ref)


def test_store_refuses_references_outside_it(tmp_path: Path) -> None:
    store = FileDocumentStore(tmp_path / "docs")
    outside = DocumentRef(uri=(tmp_path / "x.pdf").as_uri(), filename="x.pdf", size_bytes=0,
                          sha256="a" * 64)
    with pytest.raises(ValueError, match="outside"):
        store.get(outside)
    with pytest.raises(ValueError, match="file://"):
        store.get(outside.model_copy(update={"uri": "https://example.com/x.pdf"}))
