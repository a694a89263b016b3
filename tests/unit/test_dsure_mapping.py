"""D・Sure's certificate format ↔ canonical SuretyCertificate (SUR-2 fields)."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.dsure.mapping import (
    PeerFormatError,
    certificate_from_peer,
    certificate_to_peer,
    parse_wareki,
    parse_yen,
    wareki_padded,
)
from connectors.dsure.peer import seed_certificate


def test_wareki_as_dsure_prints_it() -> None:
    assert parse_wareki("令和04年09月30日") == date(2022, 9, 30)
    assert parse_wareki("令和元年5月1日") == date(2019, 5, 1)
    assert parse_wareki("平成31年4月30日") == date(2019, 4, 30)
    assert parse_wareki("令和０４年０９月３０日") == date(2022, 9, 30)  # full-width digits
    assert wareki_padded(date(2022, 9, 30)) == "令和04年09月30日"
    assert wareki_padded(date(2019, 4, 30)) == "平成31年04月30日"


@pytest.mark.parametrize("text", ["2022-09-30", "大正10年1月1日", "令和年9月30日", ""])
def test_wareki_refuses_other_dates(text: str) -> None:
    with pytest.raises(PeerFormatError):
        parse_wareki(text)


def test_yen() -> None:
    assert parse_yen("50,000,000 円") == 50_000_000
    assert parse_yen("２０，０００，０００円") == 20_000_000
    with pytest.raises(PeerFormatError):
        parse_yen("二千万円")


def test_seed_certificate_reads_back_field_for_field() -> None:
    cert = seed_certificate()
    printed = certificate_to_peer(cert)
    assert printed["保証期限"] == "令和05年09月30日"
    assert printed["工期"] == "令和04年09月30日 ~ 令和05年09月30日"
    assert printed["請負金額"] == "50,000,000 円"
    assert certificate_from_peer({"certificate": printed}) == cert


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"商品名": "入札保証"}, "商品名"),
        ({"保証金額": "たくさん"}, "yen"),
        ({"工期": "令和04年09月30日"}, "工期"),
        ({"電子保証発行日時": "昨日"}, "電子保証発行日時"),
        ({"保証契約番号": "bogus"}, "contract_number"),
        ({"工事名": ""}, "工事名"),
    ],
)
def test_garbage_certificate_is_refused_naming_the_field(change: dict[str, str],
                                                         named: str) -> None:
    printed = {**certificate_to_peer(seed_certificate()), **change}
    with pytest.raises(PeerFormatError, match=named):
        certificate_from_peer({"certificate": printed})


@pytest.mark.parametrize("body", [None, [], {"certificate": "x"}, {"error": "not-found"}])
def test_not_a_certificate_at_all(body: object) -> None:
    with pytest.raises(PeerFormatError):
        certificate_from_peer(body)
