"""Japanese text rules, in one place (REG-3, REG-7; docs/rule-ids.md).

- NFKC and the full-width / half-width distinction: 商号 and names are full-width,
  while user ID, password, phone, e-mail and postal code are half-width (REG-3, REG-7).
- 商号 normalisation (REG-3): (株)→株式会社, (有)→有限会社 (and the other legal forms),
  no space between the legal form and the name, a branch (委任先) appended without a
  space, full-width.
- 和暦 display (令和/平成/昭和 dates) for what people read: :func:`show_date` and
  :func:`show_datetime` are the one formatter of every date in a rule text or a mail
  (「令和8年（2026年）6月9日」, in Asia/Tokyo), :func:`show_date_en` its English twin.
- The REG-3 hints shown when 資格審査情報 is not found.

Everything here is pure and fast: the registration rules call it per command.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from schemas.envelope import JST

__all__ = [
    "LEGAL_FORMS",
    "LookupHint",
    "confusable_variants",
    "has_fullwidth",
    "is_halfwidth",
    "name_key",
    "nfkc",
    "normalize_trade_name",
    "not_found_hints",
    "show_date",
    "show_date_en",
    "show_datetime",
    "to_fullwidth",
    "trade_name_key",
    "wareki",
]

LEGAL_FORMS: dict[str, str] = {
    "株": "株式会社",
    "有": "有限会社",
    "合": "合同会社",
    "資": "合資会社",
    "名": "合名会社",
}
"""Abbreviations people type in parentheses, and the full legal form (REG-3)."""

_ABBREVIATION = re.compile(r"\((" + "|".join(LEGAL_FORMS) + r")\)")
_LEGAL_FORM_WORDS = "|".join(sorted(set(LEGAL_FORMS.values())))
# Spaces next to a legal form are never part of a 商号 (REG-3:
# 「株式会社」と業者名の間にはスペースを入れずに).
_SPACE_AROUND_FORM = re.compile(rf"\s*({_LEGAL_FORM_WORDS})\s*")
_SPACES = re.compile(r"\s+")
_FULLWIDTH_OFFSET = 0xFEE0


def nfkc(text: str) -> str:
    """Unicode NFKC: full-width ASCII becomes half-width, half-width kana full-width."""
    return unicodedata.normalize("NFKC", text)


def is_halfwidth(text: str) -> bool:
    """True when every character is printable half-width ASCII (REG-7 half-width fields)."""
    # ASCII's printable characters are exactly " " … "~" (U+0020-U+007E).
    return text.isascii() and text.isprintable()


def has_fullwidth(text: str) -> bool:
    """True when any character lies outside printable half-width ASCII."""
    return not is_halfwidth(text)


def to_fullwidth(text: str) -> str:
    """Printable ASCII to its full-width form (space to U+3000); other characters unchanged."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("\u3000")
        elif "!" <= ch <= "~":
            out.append(chr(ord(ch) + _FULLWIDTH_OFFSET))
        else:
            out.append(ch)
    return "".join(out)


# Cached: the rules compare the same few names for every command of a company.
@lru_cache(maxsize=8192)
def normalize_trade_name(name: str, branch: str | None = None) -> str:
    """The 商号 as the registry holds it (REG-3), full-width.

    ``"(株)A建設"`` → ``"株式会社Ａ建設"``; ``"B建設(有)", "○○支店"`` → ``"B建設有限会社○○支店"``
    (full-width Ｂ). Spaces next to a legal form go, and the branch (委任先) follows the
    name with no space.
    """
    text = _ABBREVIATION.sub(lambda m: LEGAL_FORMS[m.group(1)], nfkc(name))
    text = _SPACE_AROUND_FORM.sub(r"\1", text).strip()
    if branch:
        text += _SPACES.sub("", nfkc(branch))
    return to_fullwidth(_SPACES.sub(" ", text))


@lru_cache(maxsize=8192)
def trade_name_key(name: str, branch: str | None = None) -> str:
    """A comparison key for 商号: normalised, then without any space or case difference.

    Two spellings a person would call the same company give the same key.
    """
    return _SPACES.sub("", nfkc(normalize_trade_name(name, branch))).casefold()


@lru_cache(maxsize=8192)
def name_key(name: str) -> str:
    """A comparison key for a person's name or an address: NFKC, no spaces, case-folded."""
    return _SPACES.sub("", nfkc(name)).casefold()


_ERAS: tuple[tuple[date, str], ...] = (
    (date(2019, 5, 1), "令和"),
    (date(1989, 1, 8), "平成"),
    (date(1926, 12, 25), "昭和"),
)


def wareki(day: date) -> str:
    """``date(2025, 11, 20)`` → ``"令和7年11月20日"``; the first year of an era is 元年."""
    for start, era in _ERAS:
        if day >= start:
            year = day.year - start.year + 1
            shown = "元" if year == 1 else str(year)
            return f"{era}{shown}年{day.month}月{day.day}日"
    raise ValueError(f"{day.isoformat()} is before 昭和; no 和暦 display is defined for it")


def _local_day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(JST) if value.tzinfo is not None else value).date()
    return value


def show_date(value: date | datetime) -> str:
    """A date as people read it: 和暦 with the Western year in brackets, in JST.

    ``date(2026, 6, 9)`` → ``"令和8年（2026年）6月9日"``. The one formatter of the dates in
    rule texts and mails, so that no message shows 2026-06-09 beside 令和8年6月9日.
    """
    day = _local_day(value)
    era = wareki(day)
    cut = era.index("年") + 1
    return f"{era[:cut]}（{day.year}年）{era[cut:]}"


def show_datetime(at: datetime) -> str:
    """:func:`show_date` with the time of day in JST: ``"令和8年（2026年）6月9日 18:30"``."""
    local = at.astimezone(JST) if at.tzinfo is not None else at
    return f"{show_date(local.date())} {local:%H:%M}"


def show_date_en(value: date | datetime) -> str:
    """The English side of :func:`show_date`: ISO 8601, in JST (``"2026-06-09"``)."""
    return _local_day(value).isoformat()


# 0/O and 1/l/I are the confusions REG-3 names (数字の0と大文字のO、数字の1と小文字のlと大文字のI).
_CONFUSABLE: dict[str, str] = {"0": "0O", "O": "0O", "1": "1lI", "l": "1lI", "I": "1lI"}


@lru_cache(maxsize=4096)
def confusable_variants(text: str, limit: int = 64) -> tuple[str, ...]:
    """Spellings of ``text`` differing only by 0/O or 1/l/I (≤ ``limit``, ``text`` excluded).

    Used to find the registry entry the person most likely meant (REG-3 hint).
    """
    variants = [""]
    for ch in text:
        options = _CONFUSABLE.get(ch, ch)
        variants = [v + o for v in variants for o in options][: limit + 1]
    return tuple(v for v in variants if v != text)[:limit]


@dataclass(frozen=True, slots=True)
class LookupHint:
    """One REG-3 hint shown beside 「資格審査情報が登録されていません」."""

    code: str
    text_ja: str
    text_en: str


HINT_WRONG_ENTITY = LookupHint(
    "wrong-entity-or-domain",
    "選択した調達機関または工事／物品の区分が正しいか確認してください。",
    "Check that you chose the right procuring entity and the right domain (works / goods).",
)
HINT_FULLWIDTH = LookupHint(
    "fullwidth-in-halfwidth-field",
    "「商号又は名称」以外の項目は半角英数字で入力してください（全角文字が含まれています）。",
    "Type every field except the trade name in half-width characters (a full-width one was found).",
)
HINT_CONFUSABLE = LookupHint(
    "confusable-characters",
    "数字の0（ゼロ）と英字のO（オー）、数字の1（イチ）と英字のl（エル）・I（アイ）、大文字・小文字を"
    "取り違えていないか確認してください。",
    "Check for 0 (zero) versus O (letter), 1 (one) versus l or I (letters), and upper/lower case.",
)
HINT_PASSWORD_TODAY = LookupHint(
    "password-changed-today",
    "本日パスワードを変更した場合、利用者登録は明日以降に行ってください。",
    "The password was changed today: registration is possible from tomorrow.",
)
HINT_TRADE_NAME = LookupHint(
    "trade-name-spelling",
    "商号は全角で、株式会社・有限会社を（株）（有）と省略せず、スペースを入れずに入力してください。",
    "Type the trade name in full-width, with 株式会社/有限会社 written out and no spaces.",
)


def not_found_hints(
    *,
    user_id: str,
    wrong_entity_or_domain: bool,
    password_changed_today: bool,
    confusable_match: bool,
    trade_name_mismatch: bool,
) -> tuple[LookupHint, ...]:
    """The hints for a failed 資格審査情報 lookup (REG-3), most likely cause first.

    The caller says what it found out from the registry; this decides what to show.
    """
    hints: list[LookupHint] = []
    if wrong_entity_or_domain:
        hints.append(HINT_WRONG_ENTITY)
    if has_fullwidth(user_id):
        hints.append(HINT_FULLWIDTH)
    if password_changed_today:
        hints.append(HINT_PASSWORD_TODAY)
    if trade_name_mismatch:
        hints.append(HINT_TRADE_NAME)
    # The confusion hint is always useful when nothing more specific explains the miss.
    if confusable_match or not hints:
        hints.append(HINT_CONFUSABLE)
    return tuple(hints)
