"""Japanese text rules (schemas/text.py): NFKC, half-width fields, 商号 normalisation
(REG-3), 和暦 display, and the REG-3 not-found hints."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.text import (
    confusable_variants,
    has_fullwidth,
    is_halfwidth,
    name_key,
    nfkc,
    normalize_trade_name,
    not_found_hints,
    to_fullwidth,
    trade_name_key,
    wareki,
)


@pytest.mark.parametrize(("typed", "branch", "expected"), [
    ("(株)A建設", None, "株式会社Ａ建設"),  # the seed's own example (REG-3)
    ("B建設(有) ○○支店", None, "Ｂ建設有限会社○○支店"),  # branch without a space
    ("（株）北東組", None, "株式会社北東組"),  # full-width parentheses
    ("㈱北東組", None, "株式会社北東組"),  # the one-character abbreviation
    ("株式会社　北東組", None, "株式会社北東組"),  # no space after the legal form
    ("北東組 株式会社", "南支店", "北東組株式会社南支店"),  # branch (委任先) appended
    ("ｶﾌﾞｼｷｶﾞｲｼｬ北東", None, "カブシキガイシャ北東"),  # half-width kana made full-width
    ("(合)ABC", None, "合同会社ＡＢＣ"),
])
def test_normalize_trade_name(typed: str, branch: str | None, expected: str) -> None:
    assert normalize_trade_name(typed, branch) == expected


def test_trade_name_key_equates_spellings_of_one_company() -> None:
    assert trade_name_key("（株）Ａ建設") == trade_name_key("株式会社 A建設")
    assert trade_name_key("A建設(株)") != trade_name_key("株式会社A建設")  # position matters
    assert trade_name_key("北東組株式会社") != trade_name_key("北東組有限会社")


def test_halfwidth_checks() -> None:
    assert is_halfwidth("user-01@example.jp")
    assert not is_halfwidth("１２３")
    assert has_fullwidth("03-１234-5678")
    assert not has_fullwidth("03-1234-5678")


def test_nfkc_and_fullwidth_round_trip() -> None:
    assert nfkc("ＡＢＣ１２３") == "ABC123"
    assert to_fullwidth("AB 12") == "ＡＢ\u3000１２"
    assert nfkc(to_fullwidth("Hokuto-1")) == "Hokuto-1"
    assert name_key("北東　次郎") == name_key("北東 次郎") == "北東次郎"


@pytest.mark.parametrize(("day", "shown"), [
    (date(2019, 5, 1), "令和元年5月1日"),
    (date(2019, 4, 30), "平成31年4月30日"),
    (date(1989, 1, 8), "平成元年1月8日"),
    (date(1989, 1, 7), "昭和64年1月7日"),
    (date(2025, 11, 20), "令和7年11月20日"),
])
def test_wareki(day: date, shown: str) -> None:
    assert wareki(day) == shown


def test_wareki_refuses_dates_before_showa() -> None:
    with pytest.raises(ValueError, match="昭和"):
        wareki(date(1900, 1, 1))


def test_confusable_variants_cover_0_O_1_l_I() -> None:
    variants = confusable_variants("1O")
    assert "l0" in variants
    assert "IO" in variants
    assert "10" in variants
    assert "1O" not in variants
    assert confusable_variants("2345") == ()
    assert len(confusable_variants("1" * 20, limit=64)) == 64


def test_not_found_hints_order_and_fallback() -> None:
    hints = not_found_hints(user_id="１２３", wrong_entity_or_domain=True,
                            password_changed_today=True, confusable_match=False,
                            trade_name_mismatch=True)
    assert [h.code for h in hints] == ["wrong-entity-or-domain", "fullwidth-in-halfwidth-field",
                                       "password-changed-today", "trade-name-spelling"]
    fallback = not_found_hints(user_id="123", wrong_entity_or_domain=False,
                               password_changed_today=False, confusable_match=False,
                               trade_name_mismatch=False)
    assert [h.code for h in fallback] == ["confusable-characters"]
    assert all(h.text_ja and h.text_en for h in hints)
