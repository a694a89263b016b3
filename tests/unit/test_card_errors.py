"""The card agent's errors: rule IDs, both languages, next step, never the PIN (PIN-1)."""

from __future__ import annotations

from card_agent.errors import CardLockedError, CardRemovedError, WrongPinError
from card_agent.flows import printable_summary


def test_wrong_pin_shows_retries_left() -> None:
    err = WrongPinError(1)
    assert err.violation.rule_id == "PIN-1"
    assert "残り1回" in err.violation.message_ja
    assert "1 more wrong PIN will lock" in err.violation.message_en
    assert "自動で再試行はしません" in err.violation.next_step_ja


def test_wrong_pin_without_a_count() -> None:
    assert "More wrong PINs" in WrongPinError(None).violation.message_en


def test_locked_and_removed_say_what_to_do() -> None:
    assert "数日" in CardLockedError().violation.next_step_ja
    assert "nothing was signed" in CardRemovedError().violation.message_en


def test_printable_summary_of_a_registration() -> None:
    lines: list[str] = []
    printable_summary({"status": "done", "request_id": "r", "company_id": "1234567890123456",
                       "violations": [], "summary": {
                           "company_name": "北東組株式会社", "procuring_entity": "mlit",
                           "card": {"holder_name": "北東 次郎", "serial": "9",
                                    "not_after": "2029-01-01T00:00:00Z"}}}, lines.append)
    text = "\n".join(lines)
    assert "企業ID / company ID : 1234567890123456" in text
    assert "北東組株式会社" in text
    assert "serial 9" in text


def test_printable_summary_of_a_rejection() -> None:
    lines: list[str] = []
    printable_summary({"status": "rejected", "request_id": "r", "violations": [
        {"rule_id": "REG-1", "message_ja": "既に登録されています", "message_en": "already",
         "next_step_ja": "x", "next_step_en": "y"}]}, lines.append)
    assert lines[0].startswith("[REG-1] 既に登録されています")
