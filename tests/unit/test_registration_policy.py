"""Per-entity registration policy (pipelines/registration/policy.py): the TOML file,
the WIN-1 service window with national holidays and 12/29–1/5, and the batch time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pipelines.registration.policy import (
    IdScheme,
    PolicyError,
    ReissuedCardPolicy,
    default_policy_book,
    is_service_time,
    load_policy_book,
)
from schemas.envelope import JST
from schemas.registration import SystemKind


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


def test_default_policy_has_the_three_required_entities() -> None:
    book = default_policy_book()
    saitama = book.get("saitama-pref", SystemKind.E_BID)
    yamaguchi = book.get("yamaguchi-city", SystemKind.E_BID)
    mlit = book.get("mlit", SystemKind.E_CONTRACT)
    assert saitama is not None
    assert yamaguchi is not None
    assert mlit is not None
    assert saitama.id_scheme is IdScheme.USER_ID
    assert yamaguchi.id_scheme is IdScheme.VENDOR_NUMBER
    assert saitama.legal_representative_may_hold_card  # 埼玉県では「法人の代表者」でも可
    assert saitama.reissued_card is ReissuedCardPolicy.REGISTRATION
    assert mlit.reissued_card is ReissuedCardPolicy.RENEWAL
    assert book.entities_in("saitama-joint") == ("kawagoe-city", "saitama-pref")
    assert book.get("mlit", SystemKind.E_BID) is None


@pytest.mark.parametrize(("when", "open_"), [
    ("2026-11-24T08:29", False),  # before 08:30
    ("2026-11-24T08:30", True),
    ("2026-11-24T19:59", True),
    ("2026-11-24T20:00", False),  # the window ends at 20:00
    ("2026-11-23T10:00", False),  # 勤労感謝の日 (from the holidays library)
    ("2026-11-28T10:00", False),  # Saturday
    ("2026-12-28T10:00", True),
    ("2026-12-29T10:00", False),  # 年末年始 12/29–1/5
    ("2027-01-05T10:00", False),
    ("2027-01-06T10:00", True),
])
def test_WIN_1_ebid_window(when: str, open_: bool) -> None:
    saitama = default_policy_book().get("saitama-pref", SystemKind.E_BID)
    assert saitama is not None
    assert is_service_time(saitama, at(when)) is open_


def test_WIN_1_window_is_judged_in_japan_time() -> None:
    saitama = default_policy_book().get("saitama-pref", SystemKind.E_BID)
    assert saitama is not None
    # 2026-11-24 00:00 UTC is 09:00 in Tokyo: open.
    assert is_service_time(saitama, datetime.fromisoformat("2026-11-24T00:00:00+00:00"))


def test_econtract_is_open_24_365() -> None:
    mlit = default_policy_book().get("mlit", SystemKind.E_CONTRACT)
    assert mlit is not None
    assert is_service_time(mlit, at("2027-01-01T03:00"))


def test_next_batch_is_next_day_at_batch_time() -> None:
    saitama = default_policy_book().get("saitama-pref", SystemKind.E_BID)
    assert saitama is not None
    assert saitama.next_batch(at("2026-11-24T23:59")) == at("2026-11-25T02:00")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_policy_file_errors_name_the_entry_and_key(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="at least one"):
        load_policy_book(_write(tmp_path, "title = 'x'\n"))
    with pytest.raises(PolicyError, match=r"#1 \(x\): missing key 'system'"):
        load_policy_book(_write(tmp_path, "[[entity]]\ncode = 'x'\n"))
    good = (Path(__file__).resolve().parents[2] / "pipelines" / "registration"
            / "default_policy.toml").read_text(encoding="utf-8")
    broken = good.replace('id_scheme = "vendor-number"', 'id_scheme = "mystery"')
    with pytest.raises(PolicyError, match="yamaguchi-city"):
        load_policy_book(_write(tmp_path, broken))
    broken = good.replace('service_hours = "08:30-20:00"', 'service_hours = "20:00-08:30"', 1)
    with pytest.raises(PolicyError, match="end after it starts"):
        load_policy_book(_write(tmp_path, broken))
    start = good.index("\n[[entity]]\n")
    first = good[start:good.index("\n[[entity]]\n", start + 1)]
    with pytest.raises(PolicyError, match="two entries"):
        load_policy_book(_write(tmp_path, good + "\n" + first))
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy_book(_write(tmp_path, "[[entity]\n"))
