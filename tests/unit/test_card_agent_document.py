"""What the agent reads from a PDF itself (card_agent.document): title, parties, amounts
in the text (full-width digits too), page count, a PNG of page 1, the SHA-256."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from io import BytesIO

import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from card_agent.document import read_document
from tests.support.hubproc import ROOT


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


_THREADS = """
import threading
from tests.unit.test_card_agent_document import _pdf
from card_agent.document import read_document
pdf = _pdf(["工事請負契約書", "契約金額: 1,000円"], pages=3)
def work():
    for _ in range(40):
        assert read_document(pdf).pages == 3
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print("read 320 times from 8 threads")
"""


def test_reads_from_many_threads_at_once() -> None:
    """PDFium is not thread-safe: unserialised, this crashes the process (SIGSEGV,
    SIGABRT or SIGTRAP), as it once ended a CI run whose cases signed four at a time.
    In a child process, so that a crash fails this test rather than the whole run."""
    done = subprocess.run([sys.executable, "-c", _THREADS], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "read 320 times from 8 threads" in done.stdout
