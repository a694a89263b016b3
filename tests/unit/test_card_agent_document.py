"""What the agent reads from a PDF itself (card_agent.document): title, parties, amounts
in the text (full-width digits too), page count, a PNG of page 1, the SHA-256."""

from __future__ import annotations

import hashlib
import struct
from io import BytesIO

import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from card_agent.document import read_document


def _pdf(lines: list[str], pages: int = 1, title: str = "") -> bytes:
    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    out = BytesIO()
    c = canvas.Canvas(out)
    c.setTitle(title)  # empty: no title in the metadata
    for n in range(pages):
        c.setFont("HeiseiMin-W3", 12)
        for i, line in enumerate(lines if n == 0 else [f"{n + 1}頁"]):
            c.drawString(72, 770 - 20 * i, line)
        c.showPage()
    c.save()
    return out.getvalue()


def test_reads_what_the_document_says() -> None:
    pdf = _pdf(["工事請負契約書", "発注者: 北東市", "受注者: 北東組株式会社",
                "契約金額: ￥４８，４００，０００円"], pages=3)
    view = read_document(pdf)
    assert view.title == "工事請負契約書"  # no metadata title: the first line
    assert view.parties == ("北東市", "北東組株式会社")
    assert view.amounts_yen == (48_400_000,)
    assert view.pages == 3
    assert view.sha256 == hashlib.sha256(pdf).hexdigest()
    png = view.preview_png
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert width == 600
    assert height > width


def test_metadata_title_first_and_no_amount_is_no_amount() -> None:
    view = read_document(_pdf(["覚書"], title="変更契約書"))
    assert view.title == "変更契約書"
    assert view.amounts_yen == ()


def test_not_a_pdf_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a readable PDF"):
        read_document(b"%PDF-1.7 but not really")
