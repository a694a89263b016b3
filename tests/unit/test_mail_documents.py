"""The document store behind CON-4 attachments and links: safe references, signed links."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.mail.documents import DirectoryDocumentStore, DocumentNotFoundError

KEY = b"unit-test-signing-key-0123456789"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> DirectoryDocumentStore:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "契約書.pdf").write_bytes(b"%PDF-1.7 x")
    (tmp_path / "outside.txt").write_text("not for mail")
    return DirectoryDocumentStore(tmp_path / "docs", "https://hub.example/d", KEY)


async def test_describe_and_read(store: DirectoryDocumentStore) -> None:
    doc = await store.describe("契約書.pdf")
    assert (doc.filename, doc.content_type, doc.size) == ("契約書.pdf", "application/pdf", 10)
    assert await store.read("契約書.pdf") == b"%PDF-1.7 x"


@pytest.mark.parametrize("ref", ["../outside.txt", "/etc/passwd", "a\\..\\outside.txt",
                                 "契約書.pdf\n", "", "missing.pdf", "."])
async def test_references_outside_or_odd_are_not_found(store: DirectoryDocumentStore,
                                                       ref: str) -> None:
    with pytest.raises(DocumentNotFoundError):
        await store.describe(ref)


async def test_links_are_signed_and_expire(store: DirectoryDocumentStore) -> None:
    url = await store.download_link("契約書.pdf", NOW + timedelta(days=10))
    parts = urlsplit(url)
    assert parts.path == "/d/%E5%A5%91%E7%B4%84%E6%9B%B8.pdf"
    query = parse_qs(parts.query)
    expires, sig = int(query["expires"][0]), query["sig"][0]
    assert store.verify_link("契約書.pdf", expires, sig, NOW + timedelta(days=9, hours=23))
    assert not store.verify_link("契約書.pdf", expires, sig, NOW + timedelta(days=10))
    assert not store.verify_link("契約書.pdf", expires + 86_400, sig, NOW)  # extended by hand
    other = DirectoryDocumentStore(Path("."), "https://hub.example/d", b"x" * 32)
    assert not other.verify_link("契約書.pdf", expires, sig, NOW)


def test_key_is_required_and_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        DirectoryDocumentStore(tmp_path, "https://hub.example/d", b"short")
    assert KEY.decode() not in repr(DirectoryDocumentStore(tmp_path, "https://x.example", KEY))
