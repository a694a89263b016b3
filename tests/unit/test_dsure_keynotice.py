"""Reading 保証契約番号 and 認証キー out of the 「認証キーのお知らせ」 PDF (SUR-1)."""

from __future__ import annotations

import io

import pytest
from reportlab.pdfgen import canvas

from connectors.dsure.keynotice import KeyNoticeUnreadable, read_key_notice
from connectors.dsure.noticepdf import render_key_notice
from schemas.surety import SuretyProduct

KEY = "Z28YUE4J3Bux"


def seed_notice(**overrides: str) -> bytes:
    values = {"contract_number": "31072-0001M", "auth_key": KEY, "work_name": "●●●●工事",
              "contractor_name": "〇〇建設 株式会社", "product_ja": "前払金保証"}
    return render_key_notice(**{**values, **overrides})


def pdf_with_lines(*lines: str) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setFont("HeiseiKakuGo-W5", 11)
    for i, line in enumerate(lines):
        pdf.drawString(60, 760 - 20 * i, line)
    pdf.save()
    return buffer.getvalue()


def test_seed_layout_is_read() -> None:
    notice = read_key_notice(seed_notice())
    assert notice.contract_number == "31072-0001M"
    assert notice.auth_key == KEY
    assert notice.product is SuretyProduct.ADVANCE_PAYMENT
    assert notice.work_name == "●●●●工事"
    assert notice.contractor_name == "〇〇建設 株式会社"
    assert KEY not in repr(notice)


def test_performance_guarantee_is_recognised() -> None:
    notice = read_key_notice(seed_notice(product_ja="契約保証", contract_number="31072-0002K"))
    assert notice.product is SuretyProduct.PERFORMANCE
    assert notice.contract_number == "31072-0002K"


def test_full_width_digits_colons_and_spaced_labels() -> None:
    pdf = pdf_with_lines("保 証 契 約 番 号 ： ３１０７２－０００１Ｍ",
                         "認　証　キー：　Ｚ２８ＹＵＥ４Ｊ３Ｂｕｘ")
    notice = read_key_notice(pdf)
    assert (notice.contract_number, notice.auth_key) == ("31072-0001M", KEY)
    assert notice.product is None


@pytest.mark.parametrize(
    ("pdf", "said"),
    [
        (b"GIF89a not a pdf", "not a PDF"),
        (b"%PDF-1.7\n garbage that is no pdf", "cannot be read"),
        (pdf_with_lines("認証キー : " + KEY), "保証契約番号"),
        (pdf_with_lines("保証契約番号 : 31072-0001M"), "認証キー"),
    ],
)
def test_unreadable_notice_names_sur1_and_the_next_step(pdf: bytes, said: str) -> None:
    with pytest.raises(KeyNoticeUnreadable, match=said) as caught:
        read_key_notice(pdf)
    violation = caught.value.violation
    assert violation.rule_id == "SUR-1"
    assert violation.message_ja
    assert violation.next_step_ja
    assert violation.next_step_en
    assert KEY not in str(caught.value) + violation.model_dump_json()


def test_oversize_upload_is_refused_before_parsing() -> None:
    with pytest.raises(KeyNoticeUnreadable, match="too large"):
        read_key_notice(seed_notice(), max_bytes=100)
