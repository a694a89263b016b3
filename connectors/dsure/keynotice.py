"""Read 保証契約番号 and 認証キー out of the 「認証キーのお知らせ」 PDF (SUR-1).

The surety company issues 「電子保証にかかる『認証キー』のお知らせ」 as a PDF (seed
002); the contractor uploads it to the online application system. Its 記 section
lists, label then value::

    工 事 名 : ●●●●工事
    受 注 者 名 : 〇〇建設 株式会社
    商品(保証区分): 前払金保証
    保証契約番号: 31072-0001M
    認 証 キー : Z28YUE4J3Bux

Labels are spaced out for layout and may use full-width colons or digits, so the
text is NFKC-normalised and labels are matched with any spacing between their
characters. Anything unreadable is refused with SUR-1 and a next step in Japanese
and English; the key itself never appears in an error.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from schemas.rejection import RuleViolation
from schemas.surety import AuthKey, ContractNumber, SuretyProduct

__all__ = ["KeyNotice", "KeyNoticeUnreadable", "read_key_notice"]

MAX_PAGES = 5
_NUMBER = r"([0-9]{5}-[0-9A-Z]{4,8})"
_KEY = r"([0-9A-Za-z]{8,32})"
_PRODUCTS = {"前払金保証": SuretyProduct.ADVANCE_PAYMENT, "契約保証": SuretyProduct.PERFORMANCE}
_NEXT_JA = ("保証会社のサービス（ネットデスク）から「認証キーのお知らせ」PDFを"
            "改めてダウンロードし、加工せずにオンライン申請システムで再提出してください。")
_NEXT_EN = ("Download the 認証キーのお知らせ PDF again from the surety company's service "
            "(Net Desk) and submit it unchanged through the online application system.")

# pypdf reports damaged-but-readable files at WARNING; what matters is our verdict.
logging.getLogger("pypdf").setLevel(logging.ERROR)


class KeyNotice(BaseModel):
    """What the notice says. ``auth_key`` is a credential: never in a repr or a log."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    contract_number: ContractNumber
    auth_key: AuthKey
    product: SuretyProduct | None = None
    work_name: str | None = Field(default=None, max_length=200)
    contractor_name: str | None = Field(default=None, max_length=200)


class KeyNoticeUnreadable(ValueError):
    """The upload is not a readable 認証キーのお知らせ (SUR-1)."""

    def __init__(self, reason_ja: str, reason_en: str) -> None:
        super().__init__(f"SUR-1: {reason_en}")
        self.violation = RuleViolation(
            rule_id="SUR-1",
            message_ja=reason_ja,
            message_en=reason_en,
            next_step_ja=_NEXT_JA,
            next_step_en=_NEXT_EN,
            field="認証キーのお知らせ",
        )


def _label(text: str) -> str:
    """A label regex that allows spacing between its characters (工 事 名)."""
    return r"\s*".join(re.escape(ch) for ch in text) + r"\s*[:：]\s*"


def _extract_text(pdf: bytes, max_bytes: int) -> str:
    if len(pdf) > max_bytes:
        raise KeyNoticeUnreadable(
            f"ファイルが大きすぎます（{len(pdf):,} バイト、上限 {max_bytes:,} バイト）。",
            f"The file is too large ({len(pdf):,} bytes, limit {max_bytes:,}).",
        )
    if not pdf.startswith(b"%PDF-"):
        raise KeyNoticeUnreadable("PDF ファイルではありません。", "The file is not a PDF.")
    try:
        reader = PdfReader(io.BytesIO(pdf))
        if reader.is_encrypted:
            raise KeyNoticeUnreadable("PDF にパスワードが設定されています。",
                                      "The PDF is password-protected.")
        pages = reader.pages[:MAX_PAGES]
        return "\n".join(page.extract_text() or "" for page in pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, KeyNoticeUnreadable):
            raise
        raise KeyNoticeUnreadable("PDF を読み取れません（破損している可能性があります）。",
                                  "The PDF cannot be read (it may be damaged).") from None


def _value(text: str, label: str, pattern: str = r"(.+?)\s*$") -> str | None:
    match = re.search(_label(label) + pattern, text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def read_key_notice(pdf: bytes, *, max_bytes: int = 5 * 1024 * 1024) -> KeyNotice:
    """The number, key and context fields of one notice, or :class:`KeyNoticeUnreadable`."""
    text = unicodedata.normalize("NFKC", _extract_text(pdf, max_bytes))
    number = _value(text, "保証契約番号", _NUMBER)
    if number is None:
        raise KeyNoticeUnreadable(
            "「保証契約番号」が見つかりません。「認証キーのお知らせ」の PDF か確認してください。",
            "No 保証契約番号 (guarantee contract number) was found. "
            "Check that this is the 認証キーのお知らせ PDF.",
        )
    key = _value(text, "認証キー", _KEY)
    if key is None:
        raise KeyNoticeUnreadable("「認証キー」が見つかりません。",
                                  "No 認証キー (authentication key) was found.")
    product_text = _value(text, "商品(保証区分)")
    return KeyNotice(
        contract_number=number,
        auth_key=key,
        product=_PRODUCTS.get(product_text or ""),
        work_name=_value(text, "工事名"),
        contractor_name=_value(text, "受注者名"),
    )
