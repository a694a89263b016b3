"""The pure surety rules, table-driven per rule ID (SUR-1 … SUR-6): for each rule an
accepting and a rejecting scenario, built on the certificate of seed 002."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from pipelines.surety.rules import (
    CaseState,
    Decision,
    Guarantee,
    PaperTask,
    compare,
    decide_application,
    decide_case,
    decide_certificate,
    decide_paper,
    decide_refusal,
    erp_business_key,
    task_id,
)
from schemas.application import (
    ApplicationReceived,
    CorrectionRequested,
    FormKind,
    SuretyKeyNotice,
    WorkDomain,
)
from schemas.case import CaseRegistered, ExpectedSurety
from schemas.erp import ErpRegistrationKind, ErpRegistrationRequested
from schemas.registry import Payload
from schemas.rejection import RuleViolation
from schemas.surety import (
    CertificateForm,
    ContractSuretyCompleted,
    PaperGuaranteeRecorded,
    PaperGuaranteeTaskClosed,
    PaperGuaranteeTaskOpened,
    SuretyAccepted,
    SuretyCertificate,
    SuretyCheckRequested,
    SuretyIssueKind,
    SuretyLookupRefused,
    SuretyProduct,
    SuretyRejected,
)
from schemas.topics import Topics

ADV, PERF = SuretyProduct.ADVANCE_PAYMENT, SuretyProduct.PERFORMANCE
E, P = CertificateForm.ELECTRONIC, CertificateForm.PAPER
TODAY = date(2022, 9, 28)
CASE_ID = "R4-KOJI-0042"


def case(*, perf_form: CertificateForm = E, adv_form: CertificateForm = E,
         earlier: frozenset[int] = frozenset(), **change: Any) -> CaseState:
    """The contract of seed 002 (足利市, ●●●●工事): 前払金保証 and 契約保証."""
    facts: dict[str, Any] = {
        "case_id": CASE_ID, "contract_number": "R4-0042", "procuring_entity_name": "足利市長",
        "work_name": "●●●●工事",
        "contractor_id": "1234567890123456", "contractor_name": "〇〇建設株式会社",
        "contract_amount": 50_000_000, "contract_date": date(2022, 9, 30),
        "work_period_start": date(2022, 9, 30), "work_period_end": date(2023, 9, 30),
        "sureties": (
            ExpectedSurety(product=ADV, form=adv_form, guarantee_amount=20_000_000,
                           guarantee_deadline=date(2023, 9, 30), depository="〇〇銀行 ××支店"),
            ExpectedSurety(product=PERF, form=perf_form, guarantee_amount=5_000_000,
                           guarantee_deadline=date(2023, 9, 30)),
        ),
    }
    facts.update(change)
    return CaseState(CaseRegistered(**facts), "ashikaga-city", earlier)


def cert(**change: Any) -> SuretyCertificate:
    """The 保証証書 (前払金保証) of seed 002, as D・Sure shows it."""
    fields: dict[str, Any] = {
        "contract_number": "31072-0001M", "product": ADV, "issue_kind": SuretyIssueKind.NEW,
        "surety_company": "東日本建設業保証株式会社", "procuring_entity_name": "足利市長",
        "work_name": "●●●●工事", "contractor_name": "〇〇建設 株式会社",
        "contract_amount": 50_000_000, "guarantee_amount": 20_000_000,
        "guarantee_deadline": date(2023, 9, 30), "work_period_start": date(2022, 9, 30),
        "work_period_end": date(2023, 9, 30), "contract_date": date(2022, 9, 30),
        "depository": "〇〇銀行　××支店", "issued_at": datetime(2022, 9, 4, 3, tzinfo=UTC),
    }
    fields.update(change)
    return SuretyCertificate(**fields)


def perf_cert(**change: Any) -> SuretyCertificate:
    return cert(**{"contract_number": "31072-0002P", "product": PERF,
                   "guarantee_amount": 5_000_000, "depository": None, **change})


def decide(state: CaseState | None, c: SuretyCertificate, prior: Guarantee | None = None,
           tasks: tuple[PaperTask, ...] = ()) -> Decision:
    return decide_certificate(state, prior, tasks, c, case_id=CASE_ID, today=TODAY)


def payloads(decision: Decision, kind: type[Payload]) -> list[Any]:
    return [p for _, p in decision.emits if isinstance(p, kind)]


def only_violations(decision: Decision) -> tuple[RuleViolation, ...]:
    (rejected,) = payloads(decision, SuretyRejected)
    assert not payloads(decision, SuretyAccepted)
    # A refusal completes nothing; it only remembers the form of a first certificate (SUR-3).
    assert decision.guarantee is None or not decision.guarantee.completed
    return rejected.violations  # type: ignore[no-any-return]


# --- SUR-2: field by field -------------------------------------------------------------

def test_sur2_accepts_the_matching_certificate_after_normalising_names() -> None:
    """Full-width space, 株式会社 with a space: the same names (the seed's own spelling)."""
    assert compare(case(), cert()) == ()
    decision = decide(case(), cert())
    (accepted,) = payloads(decision, SuretyAccepted)
    assert (accepted.contract_number, accepted.product, accepted.form) == ("31072-0001M", ADV, E)


@pytest.mark.parametrize(("field", "change", "expected_ja", "found_ja"), [
    ("procuring_entity_name", {"procuring_entity_name": "佐野市長"}, "足利市長", "佐野市長"),
    ("work_name", {"work_name": "△△△△工事"}, "●●●●工事", "△△△△工事"),
    ("contractor_name", {"contractor_name": "〇〇建設有限会社"}, "〇〇建設株式会社",
     "〇〇建設有限会社"),
    ("contract_amount", {"contract_amount": 55_000_000}, "50,000,000円", "55,000,000円"),
    ("guarantee_amount", {"guarantee_amount": 2_000_000}, "20,000,000円", "2,000,000円"),
    ("guarantee_deadline", {"guarantee_deadline": date(2023, 3, 31)}, "令和5年（2023年）9月30日",
     "令和5年（2023年）3月31日"),
    ("work_period", {"work_period_end": date(2023, 10, 31)}, "令和5年（2023年）9月30日",
     "令和5年（2023年）10月31日"),
    ("contract_date", {"contract_date": date(2022, 10, 1)}, "令和4年（2022年）9月30日",
     "令和4年（2022年）10月1日"),
    ("depository", {"depository": "△△信用金庫 本店"}, "〇〇銀行 ××支店", "△△信用金庫 本店"),
    ("product", {"product": PERF, "depository": None}, "", "契約保証"),
])
def test_sur2_rejects_each_differing_field(field: str, change: dict[str, Any], expected_ja: str,
                                           found_ja: str) -> None:
    state = case(sureties=case().facts.sureties[:1]) if field == "product" else case()
    (violation,) = only_violations(decide(state, cert(**change)))
    assert (violation.rule_id, violation.field) == ("SUR-2", field)
    assert expected_ja in violation.message_ja
    assert found_ja in violation.message_ja
    assert violation.message_en
    assert violation.next_step_ja
    assert violation.next_step_en
    assert not payloads(decide(state, cert(**change)), ErpRegistrationRequested)


def test_sur2_lists_every_differing_field_at_once() -> None:
    violations = only_violations(decide(case(), cert(work_name="別工事", guarantee_amount=1,
                                                     contract_date=date(2022, 1, 1))))
    assert [v.field for v in violations] == ["work_name", "guarantee_amount", "contract_date"]
    assert "JPY 20,000,000" in violations[1].message_en
    assert "JPY 1" in violations[1].message_en


def test_sur2_deadline_later_than_required_is_fine() -> None:
    assert compare(case(), cert(guarantee_deadline=date(2024, 3, 31))) == ()


def test_sur2_jv_name_is_compared_when_the_case_is_a_jv() -> None:
    jv = case(jv_name="〇〇・△△特定建設工事共同企業体")
    assert [v.field for v in compare(jv, cert())] == ["jv_name"]
    assert compare(jv, cert(jv_name="〇〇・△△特定建設工事共同企業体")) == ()


# The 発注者, and 請負契約者 / JV名 both ways (seed 002 lists them as separate items).
@pytest.mark.parametrize(("case_change", "cert_change", "fields"), [
    ({}, {"procuring_entity_name": "足利市"}, ["procuring_entity_name"]),
    ({}, {"procuring_entity_name": "佐野市長"}, ["procuring_entity_name"]),
    ({"procuring_entity_name": "足利市長"}, {"procuring_entity_name": "足利市長"}, []),
    # A JV's guarantee for a contract made with the company alone, and the reverse.
    ({}, {"jv_name": "〇〇・△△特定建設工事共同企業体"}, ["jv_name"]),
    ({"jv_name": "〇〇・△△特定建設工事共同企業体"}, {}, ["jv_name"]),
    ({"jv_name": "〇〇・△△特定建設工事共同企業体"}, {"jv_name": "〇〇・××特定建設工事共同企業体"},
     ["jv_name"]),
    ({"jv_name": "〇〇・△△特定建設工事共同企業体"}, {"jv_name": "〇〇・△△特定建設工事共同企業体"},
     []),
    ({"jv_name": "〇〇・△△特定建設工事共同企業体"},
     {"jv_name": "〇〇・△△特定建設工事共同企業体", "contractor_name": "△△建設株式会社"},
     ["contractor_name"]),
])
def test_sur2_issuer_party_and_jv_are_compared_both_ways(
        case_change: dict[str, Any], cert_change: dict[str, Any], fields: list[str]) -> None:
    decision = decide(case(**case_change), cert(**cert_change))
    if fields:
        assert [(v.rule_id, v.field) for v in only_violations(decision)] == [
            ("SUR-2", f) for f in fields]
    else:
        assert payloads(decision, SuretyAccepted)


def test_sur2_the_case_must_name_its_issuer() -> None:
    facts = case().facts.model_dump()
    del facts["procuring_entity_name"]
    with pytest.raises(ValidationError):
        CaseRegistered(**facts)


def test_sur2_an_amount_only_change_keeps_the_old_certificate_good() -> None:
    """Seed 002 注2: 請負金額のみの変更 needs no new guarantee."""
    changed = case(contract_amount=60_000_000, earlier=frozenset({50_000_000}))
    assert compare(changed, cert()) == ()
    assert [v.field for v in compare(case(contract_amount=60_000_000), cert())] == [
        "contract_amount"]


def test_sur2_waits_for_the_case_facts() -> None:
    assert decide(None, cert()) == Decision(wait=True)


def test_sur2_refusal_by_dsure_becomes_the_case_rejection() -> None:
    violation = RuleViolation(rule_id="SUR-1", message_ja="認証キーが違います。",
                              message_en="Wrong key.")
    decision = decide_refusal(SuretyLookupRefused(contract_number="31072-0001M",
                                                  violations=(violation,)), CASE_ID)
    ((topic, rejected),) = decision.emits
    assert topic == Topics.SURETY_EVENTS
    assert isinstance(rejected, SuretyRejected)
    assert rejected.violations == (violation,)


# --- SUR-3: one guarantee contract, one form -------------------------------------------

def test_sur3_change_certificate_in_the_first_form_is_accepted() -> None:
    first = Guarantee("31072-0001M", CASE_ID, ADV, E, completed=True)
    decision = decide(case(), cert(issue_kind=SuretyIssueKind.CHANGE), prior=first)
    (accepted,) = payloads(decision, SuretyAccepted)
    assert accepted.issue_kind is SuretyIssueKind.CHANGE


def test_sur3_electronic_change_of_a_paper_guarantee_is_rejected() -> None:
    first = Guarantee("31072-0001M", CASE_ID, ADV, P, completed=True)
    (violation,) = only_violations(decide(case(), cert(issue_kind=SuretyIssueKind.CHANGE),
                                          prior=first))
    assert violation.rule_id == "SUR-3"
    assert violation.field == "form"
    assert "紙の保証証書" in violation.message_ja
    assert "混在できません" in violation.message_ja


def test_sur3_paper_original_for_an_electronic_guarantee_is_rejected() -> None:
    first = Guarantee("31072-0001M", CASE_ID, ADV, E, completed=True)
    cmd = PaperGuaranteeRecorded(case_id=CASE_ID, product=ADV, guarantee_number="31072-0001M",
                                 issue_kind=SuretyIssueKind.CHANGE, issuer="東日本建設業保証",
                                 received_on=TODAY)
    (rejected,) = payloads(decide_paper(case(), first, (), cmd, TODAY), SuretyRejected)
    assert [v.rule_id for v in rejected.violations] == ["SUR-3"]


def test_sur3_form_is_remembered_from_a_refused_first_certificate() -> None:
    """Seed 002 Q5: an electronic certificate refused for a wrong amount still makes the
    guarantee electronic; a paper certificate for the same number is then refused."""
    refused = decide(case(), cert(guarantee_amount=1))
    assert [v.rule_id for v in only_violations(refused)] == ["SUR-2"]
    assert refused.guarantee == Guarantee("31072-0001M", CASE_ID, ADV, E, completed=False)
    paper = PaperGuaranteeRecorded(case_id=CASE_ID, product=ADV, guarantee_number="31072-0001M",
                                   issue_kind=SuretyIssueKind.NEW, issuer="東日本建設業保証",
                                   received_on=TODAY)
    (rejected,) = payloads(decide_paper(case(), refused.guarantee, (), paper, TODAY),
                           SuretyRejected)
    assert [v.rule_id for v in rejected.violations] == ["SUR-3"]
    # The corrected electronic certificate is accepted, and completes the step (SUR-6).
    fixed = decide(case(), cert(issue_kind=SuretyIssueKind.CHANGE), prior=refused.guarantee)
    assert payloads(fixed, SuretyAccepted)
    assert payloads(fixed, ErpRegistrationRequested)
    assert fixed.guarantee is not None
    assert fixed.guarantee.completed


def test_sur3_a_refusal_never_changes_the_remembered_form() -> None:
    first = Guarantee("31072-0001M", CASE_ID, ADV, P, completed=False)
    assert decide(case(), cert(guarantee_amount=1), prior=first).guarantee is None


# --- SUR-4: each product its own form --------------------------------------------------

def test_sur4_electronic_advance_payment_beside_paper_performance_guarantee() -> None:
    state = case(perf_form=P)
    opened = decide_case(state, ())
    assert [(t.product, t.status) for t in opened.tasks] == [(PERF, "open")]
    decision = decide(state, cert(), tasks=opened.tasks)
    assert payloads(decision, SuretyAccepted)
    assert decision.tasks == ()  # the paper task of the other product stays open


def test_sur4_the_same_guarantee_in_two_forms_is_still_sur3() -> None:
    """SUR-4's boundary: the freedom is per product, never within one guarantee contract."""
    paper_first = Guarantee("31072-0002P", CASE_ID, PERF, P, completed=True)
    (violation,) = only_violations(decide(case(perf_form=P), perf_cert(), prior=paper_first))
    assert violation.rule_id == "SUR-3"


# --- SUR-5: paper originals are a task due on the contract date -----------------------

def test_sur5_paper_guarantee_opens_a_task_not_an_error() -> None:
    decision = decide_case(case(perf_form=P), ())
    (opened,) = payloads(decision, PaperGuaranteeTaskOpened)
    assert opened.due_date == date(2022, 9, 30)
    assert opened.product is PERF
    assert opened.task_id == task_id(CASE_ID, PERF)
    assert not payloads(decision, SuretyRejected)
    assert decide_case(case(), ()).emits == ()  # all electronic: no task


def test_sur5_a_changed_contract_date_moves_the_due_date() -> None:
    first = decide_case(case(perf_form=P), ()).tasks
    moved = decide_case(case(perf_form=P, contract_date=date(2022, 10, 7)), first)
    (opened,) = payloads(moved, PaperGuaranteeTaskOpened)
    assert opened.due_date == date(2022, 10, 7)
    assert decide_case(case(perf_form=P), first).emits == ()


@pytest.mark.parametrize(("received_on", "late"), [(date(2022, 9, 30), False),
                                                    (date(2022, 10, 3), True)])
def test_sur5_original_received_closes_the_task(received_on: date, late: bool) -> None:
    state = case(perf_form=P)
    tasks = decide_case(state, ()).tasks
    cmd = PaperGuaranteeRecorded(case_id=CASE_ID, product=PERF, guarantee_number="BG-2022-0042",
                                 issuer="〇〇銀行", received_on=received_on)
    decision = decide_paper(state, None, tasks, cmd, TODAY)
    (closed,) = payloads(decision, PaperGuaranteeTaskClosed)
    assert closed.late is late
    assert [t.status for t in decision.tasks] == ["received"]
    (done,) = payloads(decision, ContractSuretyCompleted)  # SUR-6 for the paper 契約保証
    assert (done.form, done.guarantee_number) == (P, "BG-2022-0042")


def test_sur5_electronic_certificate_instead_of_paper_supersedes_the_task() -> None:
    state = case(perf_form=P)
    tasks = decide_case(state, ()).tasks
    decision = decide(state, perf_cert(), tasks=tasks)
    assert [t.status for t in decision.tasks] == ["superseded"]
    assert payloads(decision, PaperGuaranteeTaskClosed)


def test_sur5_paper_advance_payment_needs_a_surety_company_number() -> None:
    with pytest.raises(ValidationError, match="保証契約番号"):
        PaperGuaranteeRecorded(case_id=CASE_ID, product=ADV, guarantee_number="BG-1",
                               issuer="〇〇銀行", received_on=TODAY)


# --- SUR-6: acceptance completes the step once ------------------------------------------

def test_sur6_advance_payment_becomes_an_erp_registration() -> None:
    decision = decide(case(), cert())
    ((topic, erp),) = [(t, p) for t, p in decision.emits if isinstance(p, ErpRegistrationRequested)]
    assert topic == Topics.ERP_COMMANDS
    assert (erp.kind, erp.surety_number, erp.amount_jpy) == (
        ErpRegistrationKind.ADVANCE_PAYMENT, "31072-0001M", 20_000_000)
    assert erp.business_key == "ashikaga-city:R4-0042:advance-payment:31072-0001M"
    assert (erp.contract_number, erp.request_date) == ("R4-0042", TODAY)
    assert decision.guarantee == Guarantee("31072-0001M", CASE_ID, ADV, E, completed=True)


def test_sur6_performance_guarantee_completes_the_contract_step() -> None:
    decision = decide(case(), perf_cert())
    ((topic, done),) = [(t, p) for t, p in decision.emits if isinstance(p, ContractSuretyCompleted)]
    assert topic == Topics.SURETY_EVENTS
    assert (done.case_id, done.guarantee_number, done.form, done.guarantee_amount) == (
        CASE_ID, "31072-0002P", E, 5_000_000)
    assert not payloads(decision, ErpRegistrationRequested)


def test_sur6_a_guarantee_already_completed_completes_nothing_again() -> None:
    done = Guarantee("31072-0001M", CASE_ID, ADV, E, completed=True)
    decision = decide(case(), cert(), prior=done)
    assert payloads(decision, SuretyAccepted)
    assert not payloads(decision, ErpRegistrationRequested)


def test_sur6_a_rejected_certificate_completes_nothing() -> None:
    decision = decide(case(), cert(guarantee_amount=1))
    assert not payloads(decision, ErpRegistrationRequested)
    assert not payloads(decision, ContractSuretyCompleted)


def test_business_key_stays_within_the_erp_limit() -> None:
    key = erp_business_key("a" * 60, "R4-0042", "advance-payment:31072-0001M")
    assert len(key) <= 80
    assert key.startswith("R4-0042:")


# --- SUR-1: key notices become D・Sure checks ------------------------------------------

def received(**change: Any) -> ApplicationReceived:
    fields: dict[str, Any] = {
        "application_id": "APP-0001", "case_id": CASE_ID, "form": FormKind.SURETY_KEY_NOTICE,
        "domain": WorkDomain.CONSTRUCTION, "company_name": "〇〇建設株式会社",
        "submitted_at": datetime(2022, 9, 5, 1, tzinfo=UTC),
        "surety_notices": (SuretyKeyNotice(attachment_id="att-1", contract_number="31072-0001M",
                                           auth_key="Z28YUE4J3Bux", product=ADV),),
    }
    fields.update(change)
    return ApplicationReceived(**fields)


def test_sur1_each_key_notice_becomes_a_check() -> None:
    ((topic, check),) = decide_application(received()).emits
    assert topic == Topics.SURETY_COMMANDS
    assert isinstance(check, SuretyCheckRequested)
    assert (check.contract_number, check.auth_key, check.expected_product) == (
        "31072-0001M", "Z28YUE4J3Bux", ADV)
    assert "Z28YUE4J3Bux" not in repr(check)


def test_sur1_a_notice_form_without_a_readable_notice_asks_for_a_correction() -> None:
    ((topic, correction),) = decide_application(received(surety_notices=())).emits
    assert topic == Topics.APPLICATION_COMMANDS
    assert isinstance(correction, CorrectionRequested)
    assert [v.rule_id for v in correction.violations] == ["SUR-1"]
    assert correction.correction_id == decide_application(
        received(surety_notices=())).emits[0][1].correction_id  # type: ignore[attr-defined]


def test_sur1_other_forms_without_notices_need_nothing() -> None:
    assert decide_application(received(form=FormKind.WORK_SCHEDULE, surety_notices=())).emits == ()


# --- the result notice (電子保証の確認結果) -------------------------------------------------

def test_result_mail_goes_to_the_case_address_and_renders() -> None:
    from connectors.mail.templates import render
    from schemas.mail import MailKind, MailRequested

    state = case(notice_email="keiyaku@example.jp")
    for decision, result in ((decide(state, cert()), "受理しました"),
                             (decide(state, cert(guarantee_amount=1)), "受理できません")):
        (mail,) = payloads(decision, MailRequested)
        assert mail.kind is MailKind.SURETY_RESULT
        assert mail.to == ("keiyaku@example.jp",)
        subject, body, _ = render(mail.kind, mail.values, "電子契約システム")
        assert "●●●●工事" in subject
        assert result in body
        assert "31072-0001M" in body
    (rejected_mail,) = payloads(decide(state, cert(guarantee_amount=1)), MailRequested)
    assert "[SUR-2]" in rejected_mail.values["detail"]
    assert payloads(decide(case(), cert()), MailRequested) == []  # no address, no mail
