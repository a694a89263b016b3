"""Render a 「電子保証にかかる『認証キー』のお知らせ」 PDF the way the surety company does.

Used by the reference D・Sure peer (it issues the notice with each certificate)
and by tests; layout after seed 002. Japanese text uses the PDF standard CID font
HeiseiKakuGo-W5 (Adobe-Japan1, not embedded), so no font file is needed.
Needs the ``peers`` extra (reportlab).
"""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

__all__ = ["render_key_notice"]

_FONT = "HeiseiKakuGo-W5"
pdfmetrics.registerFont(UnicodeCIDFont(_FONT))


def render_key_notice(*, contract_number: str, auth_key: str, work_name: str,
                      contractor_name: str, product_ja: str,
                      surety_company: str = "東日本建設業保証株式会社") -> bytes:
    """One notice as PDF bytes (A4, one page)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle("電子保証にかかる「認証キー」のお知らせ")
    pdf.setAuthor(surety_company)
    pdf.setFont(_FONT, 15)
    pdf.drawString(130, 780, "電子保証にかかる「認証キー」のお知らせ")
    pdf.setFont(_FONT, 10)
    lines = (
        "電子証書を「保証確認サービス(D・Sure)」に掲載しましたので、お知らせします。",
        "つきましては、下記内容をご確認いただき、このPDFファイルを発注者様にご提出ください。",
        "①電子契約システムへのアップロード 又は ②電子メールに添付して送信",
    )
    for i, line in enumerate(lines):
        pdf.drawString(60, 740 - 16 * i, line)
    pdf.drawString(290, 670, "記")
    pdf.setFont(_FONT, 11)
    fields = (
        ("工 事 名", work_name),
        ("受 注 者 名", contractor_name),
        ("商品(保証区分)", product_ja),
        ("保証契約番号", contract_number),
        ("認 証 キー", auth_key),
    )
    for i, (label, value) in enumerate(fields):
        pdf.drawString(80, 640 - 24 * i, f"{label} : {value}")
    pdf.setFont(_FONT, 9)
    pdf.drawString(80, 500, "(JVの場合は代表者)")
    pdf.drawString(60, 484, "【発注者様へのお問い合わせ】")
    pdf.drawString(60, 470, "「保証確認サービス(D・Sure)」にログインし、")
    pdf.drawString(60, 456, "上記の「保証契約番号」と「認証キー」をもって電子証書を閲覧ください。")
    pdf.drawString(60, 420, surety_company)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
