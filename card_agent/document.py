"""What the agent itself reads from a PDF before the card signs it.

The person confirms what the document says, not what the hub describes: its title,
the parties, the amounts written in its text, the page count, a picture of the first
page, and the SHA-256 that is signed (the hash of the exact bytes). The PDF is read with
PDFium (pypdfium2: wheels for Windows, macOS and Linux), locally; nothing is sent.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
import unicodedata
import zlib
from dataclasses import dataclass

import pypdfium2 as pdfium

__all__ = ["DocumentView", "read_document"]

# 金額 labels of Japanese contracts (契約金額, 請負代金額, 金額, 合計) and "Amount".
_AMOUNT = re.compile(r"(?:契約金額|請負代金額|代金額|金額|合計|amount)\s*[:：]?\s*[¥￥]?\s*"
                     r"([0-9][0-9,]*)\s*円?", re.IGNORECASE)
_PARTY = re.compile(r"^\s*(?:発注者|受注者|甲|乙|party)\s*[:：(（]?\s*(.+?)\s*[)）]?\s*$",
                    re.IGNORECASE | re.MULTILINE)
_PREVIEW_WIDTH = 600
# PDFium is not thread-safe: two threads inside it at once crash the whole process
# (SIGSEGV, SIGABRT, or SIGTRAP from a failed CHECK). Every call into it holds this lock.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class DocumentView:
    """What the PDF says of itself, for the confirmation page."""

    sha256: str
    pages: int
    title: str
    parties: tuple[str, ...]
    amounts_yen: tuple[int, ...]
    text: str
    preview_png: bytes


def read_document(pdf: bytes) -> DocumentView:
    """Read ``pdf``; raises ValueError when it is not a PDF PDFium can open."""
    with _PDFIUM:
        texts, bitmap, meta_title, pages = _read_locked(pdf)
    png = _png(*bitmap)
    text = unicodedata.normalize("NFKC", "\n".join(texts)).replace("\r", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    amounts = tuple(dict.fromkeys(int(m.group(1).replace(",", ""))
                                  for m in _AMOUNT.finditer(text)))
    parties = tuple(dict.fromkeys(m.group(1) for m in _PARTY.finditer(text)))
    return DocumentView(sha256=hashlib.sha256(pdf).hexdigest(), pages=pages,
                        title=meta_title or (lines[0] if lines else ""), parties=parties,
                        amounts_yen=amounts, text=text, preview_png=png)


_Bitmap = tuple[bytes, int, int, int, int]  # buffer, width, height, stride, channels


def _read_locked(pdf: bytes) -> tuple[list[str], _Bitmap, str, int]:
    """The page texts, the first page's pixels, the metadata title and the page count.
    Every PDFium object is closed here, under ``_PDFIUM``: a finaliser would run on
    whichever thread collects it, outside the lock."""
    try:
        doc = pdfium.PdfDocument(pdf)
    except pdfium.PdfiumError as exc:
        raise ValueError(f"not a readable PDF: {exc}") from exc
    try:
        texts = []
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range())
            textpage.close()
            page.close()
        first = doc[0]
        scale = _PREVIEW_WIDTH / max(first.get_width(), 1)
        rendered = first.render(scale=scale, rev_byteorder=True)  # RGB
        bitmap = (bytes(rendered.buffer), rendered.width, rendered.height, rendered.stride,
                  rendered.n_channels)
        rendered.close()
        first.close()
        meta_title = (doc.get_metadata_dict().get("Title") or "").strip()
        pages = len(doc)
    finally:
        doc.close()
    return texts, bitmap, meta_title, pages


def _png(buffer: bytes, width: int, height: int, stride: int, channels: int) -> bytes:
    """A PNG of an 8-bit RGB(A) bitmap (zlib of filter-0 rows), without an imaging library.

    zlib's fastest level: the picture goes over loopback only, and the default level takes
    twice as long for a page (docs/performance.md)."""
    color = {3: 2, 4: 6}[channels]
    row = width * channels
    raw = b"".join(b"\0" + buffer[y * stride:y * stride + row] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
