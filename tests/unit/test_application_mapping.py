"""Online application system format ↔ canonical messages (CON-1, SUR-1)."""

from __future__ import annotations

import uuid

import pytest

from connectors.application.mapping import (
    PeerFormatError,
    application_from_peer,
    correction_to_peer,
    e_contract_from_answers,
    form_from_label,
    message_id_for,
    surety_checks,
)
from schemas.application import CorrectionRequested, FormKind, SuretyKeyNotice, WorkDomain
from schemas.rejection import RuleViolation
from schemas.surety import SuretyKeySource, SuretyProduct

SIGNATORY = {"工事名": "市道1号線舗装工事", "契約締結権限者氏名": "足利 一郎",
             "契約締結権限者メールアドレス": "ichiro@example.co.jp"}


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "seq": 1, "id": "A000001", "case_no": "R5-0001", "procedure": "電子契約利用申出書",
        "category": "建設工事", "applicant": {"company": "〇〇建設株式会社",
                                               "representative": "代表 太郎"},
        "submitted_at": "2026-11-23T10:00:00+09:00", "answers": dict(SIGNATORY),
        "attachments": [{"id": "F1", "kind": "電子保証に係る認証キーのお知らせ",
                         "filename": "key.pdf", "content_type": "application/pdf",
                         "size": 10, "sha256": "0" * 64}],
    }
    return {**base, **changes}


@pytest.mark.parametrize("kind", list(FormKind))
def test_every_seed_form_title_is_known(kind: FormKind) -> None:
    assert form_from_label(kind.label_ja) is kind


def test_unknown_procedure_is_a_format_error() -> None:
    with pytest.raises(PeerFormatError, match="unknown procedure"):
        form_from_label("り災証明書交付申請書")


def test_e_contract_application_reads_signatory_and_officers() -> None:
    answers = {**SIGNATORY, "工事場所": "足利市本城", "契約担当者1氏名": "担当 花子",
               "契約担当者1メールアドレス": "hanako@example.co.jp",
               "契約担当者3氏名": "担当 三郎", "契約担当者3メールアドレス": "saburo@example.co.jp"}
    form, problems = e_contract_from_answers(answers)
    assert problems == ()
    assert form is not None
    assert form.signatory.email == "ichiro@example.co.jp"
    assert [o.name for o in form.officers] == ["担当 花子", "担当 三郎"]


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"工事名": "x"}, "契約締結権限者"),
        ({**SIGNATORY, "契約締結権限者メールアドレス": "全角＠example.jp"}, "契約締結権限者"),
        ({**SIGNATORY, "契約担当者2氏名": "名前だけ"}, "契約担当者2"),
        ({**SIGNATORY, "工事名": " "}, "工事名"),
    ],
)
def test_e_contract_problems_cite_con1(answers: dict[str, str], field: str) -> None:
    form, problems = e_contract_from_answers(answers)
    assert form is None
    assert [p.rule_id for p in problems] == ["CON-1"]
    assert problems[0].field == field
    assert problems[0].next_step_en


def test_record_maps_to_application_received() -> None:
    received = application_from_peer(record())
    assert received.form is FormKind.E_CONTRACT_APPLICATION
    assert received.domain is WorkDomain.CONSTRUCTION
    assert received.e_contract is not None
    assert received.attachments[0].form is FormKind.SURETY_KEY_NOTICE
    assert received.attachments[0].url == "/api/v1/applications/A000001/attachments/F1"
    assert received.problems == ()


@pytest.mark.parametrize("change", [{"category": "物品"}, {"answers": {"a": 1}},
                                    {"submitted_at": "yesterday"}, {"applicant": None},
                                    {"attachments": [{"id": "F1"}]}])
def test_broken_records_are_format_errors(change: dict[str, object]) -> None:
    with pytest.raises(PeerFormatError):
        application_from_peer(record(**change))


def test_webhook_and_poll_give_one_message_id() -> None:
    assert message_id_for("A000001") == message_id_for("A000001")
    assert message_id_for("A000001") != message_id_for("A000002")


def test_surety_checks_from_notices_and_correction_format() -> None:
    notice = SuretyKeyNotice(attachment_id="F1", contract_number="31072-0001M",
                             auth_key="Z28YUE4J3Bux", product=SuretyProduct.PERFORMANCE)
    received = application_from_peer(record(), notices=(notice,))
    (check,) = surety_checks(received)
    assert check.source is SuretyKeySource.APPLICATION
    assert check.application_id == "A000001"
    assert check.expected_product is SuretyProduct.PERFORMANCE
    correction = CorrectionRequested(
        correction_id=uuid.uuid4(), application_id="A000001", comment_ja="再提出を",
        violations=(RuleViolation(rule_id="SUR-1", message_ja="読めません",
                                  message_en="unreadable", next_step_ja="再提出"),))
    body = correction_to_peer(correction)
    assert body["items"] == [{"rule": "SUR-1", "field": "", "message": "読めません",
                              "next_step": "再提出"}]
