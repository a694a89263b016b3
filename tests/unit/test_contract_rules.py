"""The contract process's transition table, rule by rule (CON-1 … CON-4), accept and reject.

Pure: (state, command) → decision, no database, no broker.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from pipelines.contract.erp import default_period, why_not_registered
from pipelines.contract.links import FreshLink
from pipelines.contract.rules import Decision, decide
from pipelines.contract.state import CaseState, ContractPolicy
from schemas.cloudsign import ContractConcluded, ContractSendRequested
from schemas.contract import (
    CityAgreed,
    CitySignatureApplied,
    ContractCaseOpened,
    ContractForwarded,
    ContractorAgreed,
    ContractorRejected,
    ContractorSignatureAccepted,
    ContractParty,
    ContractReviewLinkExpired,
    ContractReviewLinkSent,
    ContractRoute,
    ContractSetPrepared,
    ContractStatus,
    DocumentRef,
    ElectronicContractApplication,
    ElectronicContractConcluded,
    ReviewLinkExpiryReached,
    ReviewLinkResendRequested,
)
from schemas.erp import ErpRegistrationKind
from schemas.mail import MailKind
from schemas.registry import Payload
from schemas.surety import CertificateForm, ContractSuretyCompleted

T0 = datetime(2026, 4, 1, 1, 0, tzinfo=UTC)
POLICY = ContractPolicy(review_link_ttl=timedelta(days=7))
BOSS = ContractParty(name="足利 一郎", email="boss@demo.co.jp")
CLERK = ContractParty(name="田中 太郎", email="tanaka@demo.co.jp")
CITY = ContractParty(name="契約 花子", email="keiyaku@city.ashikaga.jp")
S = ContractStatus


def doc(content: bytes = b"%PDF-set", name: str = "set.pdf") -> DocumentRef:
    digest = hashlib.sha256(content).hexdigest()
    return DocumentRef(uri=f"contract-doc:{digest}", filename=name, size_bytes=len(content),
                       sha256=digest)


def step(state: CaseState | None, cmd: Payload, now: datetime = T0,
         acted_at: datetime | None = None) -> Decision:
    return decide(state, cmd, entity="ashikaga-city", now=now, acted_at=acted_at or now,
                  policy=POLICY)


def ok(decision: Decision) -> CaseState:
    assert not decision.rejected, decision.violations
    assert decision.state is not None
    return decision.state


def rules_of(decision: Decision) -> list[str]:
    assert decision.state is None
    return [v.rule_id for v in decision.violations]


def opened(route: ContractRoute = ContractRoute.CARD) -> CaseState:
    return ok(step(None, ContractCaseOpened(
        case_id="R8-001", subject="市道改良工事", amount_yen=12_000_000,
        contractor_network="tochigi", contractor_user_id="U0001", contractor_name="デモ商事",
        city_name="足利市", city_officer=CITY, route=route, opened_at=T0)))


def application(officers: tuple[ContractParty, ...] = (CLERK,),
                authorized: ContractParty | None = BOSS) -> ElectronicContractApplication:
    return ElectronicContractApplication(case_id="R8-001", work_name="市道改良工事",
                                         authorized=authorized, officers=officers, applied_at=T0)


def in_review(route: ContractRoute = ContractRoute.CARD) -> CaseState:
    applied = ok(step(opened(route), application()))
    return ok(step(applied, ContractSetPrepared(case_id="R8-001", title="請負契約書",
                                                document=doc())))


def link_of(state: CaseState) -> ContractorAgreed:
    assert state.link is not None
    return ContractorAgreed(case_id="R8-001", link_id=state.link.link_id, by=BOSS.email)


# -- CON-1: 電子契約利用申出書 ---------------------------------------------------------------

def test_con1_application_with_authorized_and_three_officers_is_accepted() -> None:
    officers = tuple(ContractParty(name=f"担当 {i}", email=f"c{i}@demo.co.jp") for i in range(3))
    state = ok(step(opened(), application(officers)))
    assert state.status is S.APPLIED
    assert state.declared_addresses == ("boss@demo.co.jp", "c0@demo.co.jp", "c1@demo.co.jp",
                                        "c2@demo.co.jp")


def test_con1_application_without_authorized_is_rejected() -> None:
    decision = step(opened(), application(authorized=None))
    assert rules_of(decision) == ["CON-1"]
    assert decision.violations[0].field == "authorized"
    assert "契約締結権限者" in decision.violations[0].next_step_ja


def test_con1_four_officers_are_rejected() -> None:
    officers = tuple(ContractParty(name=f"担当 {i}", email=f"c{i}@demo.co.jp") for i in range(4))
    assert rules_of(step(opened(), application(officers))) == ["CON-1"]


def test_con1_new_application_during_review_sends_a_new_link_to_the_new_addresses() -> None:
    review = in_review()
    assert review.link is not None
    moved = ContractParty(name="田中 太郎", email="tanaka@new.demo.co.jp")
    decision = step(review, application((moved,)), T0 + timedelta(hours=1))
    state = ok(decision)
    assert state.link is not None
    assert state.link.link_id != review.link.link_id
    assert "tanaka@new.demo.co.jp" in state.link.to
    assert "tanaka@demo.co.jp" not in state.link.to
    assert [m.kind for m in decision.mails] == [MailKind.CONTRACT_REVIEW]
    old = step(state, link_of(review), T0 + timedelta(hours=2))
    assert rules_of(old) == ["CON-3"]  # the superseded link no longer works


def test_con1_addresses_cannot_change_after_agreement() -> None:
    review = in_review()
    agreed = ok(step(review, link_of(review)))
    assert rules_of(step(agreed, application())) == ["CON-1"]


def test_con1_resend_to_an_undeclared_address_is_rejected() -> None:
    decision = step(in_review(), ReviewLinkResendRequested(case_id="R8-001",
                                                          requested_by="other@demo.co.jp"))
    assert rules_of(decision) == ["CON-1"]
    assert "新しい電子契約利用申出書" in decision.violations[0].next_step_ja


# -- CON-2: the flow ---------------------------------------------------------------------------

def test_con2_steps_before_bid_opening_are_rejected() -> None:
    assert rules_of(step(None, application())) == ["CON-2"]


def test_con2_a_case_is_opened_once() -> None:
    again = ContractCaseOpened(case_id="R8-001", subject="x", amount_yen=1,
                               contractor_network="n", contractor_user_id="u",
                               contractor_name="c", city_name="c", city_officer=CITY,
                               opened_at=T0)
    assert rules_of(step(opened(), again)) == ["CON-2"]


def test_con2_contract_set_needs_the_application_first() -> None:
    cmd = ContractSetPrepared(case_id="R8-001", title="請負契約書", document=doc())
    assert rules_of(step(opened(), cmd)) == ["CON-2"]


def test_con2_prepared_set_goes_for_review_with_a_link_to_every_declared_address() -> None:
    applied = ok(step(opened(), application()))
    decision = step(applied, ContractSetPrepared(case_id="R8-001", title="請負契約書",
                                                 document=doc()))
    state = ok(decision)
    assert state.status is S.REVIEW
    (sent,) = [e for e in decision.events if isinstance(e, ContractReviewLinkSent)]
    assert sent.to == ("boss@demo.co.jp", "tanaka@demo.co.jp")
    assert sent.expires_at == T0 + timedelta(days=7)
    (mail,) = decision.mails
    # CON-3: the mail carries the link's random token, which opens the page; its id, on
    # the events topic for everyone to read, does not appear in it
    assert decision.new_link is not None
    assert decision.new_link.link_id == sent.link_id
    assert mail.values["review_url"].endswith("/" + decision.new_link.token)
    assert str(sent.link_id) not in mail.values["review_url"]
    assert len(decision.new_link.token) >= 43


def test_con3_links_are_drawn_at_random_never_derived_from_the_case() -> None:
    applied = ok(step(opened(), application()))
    command = ContractSetPrepared(case_id="R8-001", title="請負契約書", document=doc())
    first, second = step(applied, command), step(applied, command)
    assert first.new_link is not None
    assert second.new_link is not None
    assert first.new_link.token != second.new_link.token
    assert first.new_link.link_id != second.new_link.link_id
    fixed = FreshLink(uuid.UUID(int=7), "t" * 43)
    decided = decide(applied, command, entity="ashikaga-city", now=T0, acted_at=T0,
                     policy=POLICY, fresh=fixed)
    assert decided.new_link == fixed  # the caller's draw, for a repeatable decision


def test_con2_full_card_route_to_conclusion() -> None:
    review = in_review()
    agreed = step(review, link_of(review))
    state = ok(agreed)
    assert agreed.sign_request
    assert (state.status, state.agreed) == (S.CONTRACTOR_AGREED, 1)
    state = state.model_copy(update={"signing_job_id": "job-1"})
    signed = ok(step(state, ContractorSignatureAccepted(
        case_id="R8-001", signing_job_id="job-1", document=doc(b"%PDF-signed-1"),
        signer_issuer="CN=CA", signer_serial="7", signed_at=T0)))
    assert signed.status is S.CONTRACTOR_SIGNED
    city = ok(step(signed, CityAgreed(case_id="R8-001", by=CITY.email)))
    assert (city.status, city.agreed) == (S.CITY_AGREED, 2)
    final = doc(b"%PDF-signed-2", "請負契約書.pdf")
    done = step(city, CitySignatureApplied(case_id="R8-001", document=final,
                                           signer_subject="CN=City", signed_at=T0))
    assert ok(done).status is S.CONCLUDED
    assert any(isinstance(e, ElectronicContractConcluded) for e in done.events)
    # CON-4: one mail per party, each naming the signed PDF
    assert [m.kind for m in done.mails] == [MailKind.CONTRACT_CONCLUDED] * 2
    assert [m.to for m in done.mails] == [("boss@demo.co.jp", "tanaka@demo.co.jp"),
                                         ("keiyaku@city.ashikaga.jp",)]
    assert {m.attachment_ref for m in done.mails} == {
        f"contracts/{final.sha256}/請負契約書.pdf"}


def test_con2_contractor_may_reject_and_the_city_prepares_a_new_set() -> None:
    review = in_review()
    assert review.link is not None
    rejected = ok(step(review, ContractorRejected(case_id="R8-001", link_id=review.link.link_id,
                                                  by=CLERK.email, reason="金額が違います")))
    assert (rejected.status, rejected.rejection_reason) == (S.REJECTED, "金額が違います")
    assert rules_of(step(rejected, link_of(review))) == ["CON-2"]
    again = ok(step(rejected, ContractSetPrepared(case_id="R8-001", title="請負契約書(修正)",
                                                  document=doc(b"%PDF-v2"))))
    assert again.status is S.REVIEW


def test_con2_forward_goes_only_to_a_declared_person() -> None:
    review = in_review()
    assert review.link is not None
    fwd = step(review, ContractForwarded(case_id="R8-001", link_id=review.link.link_id,
                                         by=CLERK.email, to=BOSS.email))
    state = ok(fwd)
    assert state.link is not None
    assert state.link.to == ("boss@demo.co.jp",)
    stranger = ContractForwarded(case_id="R8-001", link_id=review.link.link_id, by=CLERK.email,
                                 to="x@elsewhere.jp")
    assert rules_of(step(review, stranger)) == ["CON-1"]


def test_con2_only_the_city_officer_agrees_for_the_city() -> None:
    review = in_review()
    state = ok(step(review, link_of(review))).model_copy(
        update={"status": S.CONTRACTOR_SIGNED})
    assert rules_of(step(state, CityAgreed(case_id="R8-001", by="someone@city.jp"))) == ["CON-2"]


def test_con2_city_cannot_agree_before_the_contractor_signed() -> None:
    assert rules_of(step(in_review(), CityAgreed(case_id="R8-001", by=CITY.email))) == ["CON-2"]


def test_con2_cloudsign_route_sends_the_set_and_concludes_on_cloudsign_event() -> None:
    review = step(ok(step(opened(ContractRoute.CLOUDSIGN), application())),
                  ContractSetPrepared(case_id="R8-001", title="請負契約書", document=doc()))
    state = ok(review)
    assert state.status is S.SENT_TO_CLOUDSIGN
    (send,) = review.commands
    assert isinstance(send, ContractSendRequested)
    assert [p.email for p in send.participants] == [BOSS.email, CLERK.email, CITY.email]
    done = step(state, ContractConcluded(
        document_id="doc1", case_id="R8-001", title="請負契約書", concluded_at=T0,
        signed_files=(doc(b"%PDF-cs"),), certificate=doc(b"%PDF-cert")))
    assert ok(done).status is S.CONCLUDED
    assert done.mails == []  # CloudSign mails both parties itself


# -- CON-3: review links expire; re-sent on request -------------------------------------------

def test_con3_agreeing_through_an_expired_link_is_rejected_and_a_resend_works() -> None:
    review = in_review()
    late = T0 + timedelta(days=7, seconds=1)
    decision = step(review, link_of(review), late)
    assert rules_of(decision) == ["CON-3"]
    assert "再送" in decision.violations[0].next_step_ja
    resent = step(review, ReviewLinkResendRequested(case_id="R8-001", requested_by=BOSS.email),
                  late)
    state = ok(resent)
    assert state.link is not None
    assert state.link.expires_at == late + timedelta(days=7)
    agreed = ok(step(state, link_of(state), late + timedelta(minutes=5)))
    assert agreed.status is S.CONTRACTOR_AGREED


def test_con3_expiry_timer_marks_the_link_expired_once() -> None:
    review = in_review()
    assert review.link is not None
    due = ReviewLinkExpiryReached(case_id="R8-001", link_id=review.link.link_id)
    assert step(review, due, T0 + timedelta(days=1)).state is None  # early: nothing
    decision = step(review, due, T0 + timedelta(days=8))
    assert any(isinstance(e, ContractReviewLinkExpired) for e in decision.events)
    expired = ok(decision)
    assert step(expired, due, T0 + timedelta(days=9)).state is None  # once
    assert rules_of(step(expired, link_of(expired), T0 + timedelta(days=1))) == ["CON-3"]


@pytest.mark.parametrize("status", [S.OPENED, S.APPLIED, S.CONTRACTOR_AGREED, S.CONCLUDED])
def test_con3_resend_outside_review_is_rejected(status: ContractStatus) -> None:
    state = opened().model_copy(update={"status": status})
    assert rules_of(step(state, ReviewLinkResendRequested(
        case_id="R8-001", requested_by=BOSS.email))) == ["CON-2"]


# -- SUR-6: the 契約保証 completes the conclusion step ------------------------------------------

def test_sur6_city_agrees_only_once_the_required_surety_is_accepted() -> None:
    review = in_review().model_copy(update={"surety_required": True})
    signed = ok(step(review, link_of(review))).model_copy(update={"status": S.CONTRACTOR_SIGNED})
    agree = CityAgreed(case_id="R8-001", by=CITY.email)
    assert rules_of(step(signed, agree)) == ["SUR-6"]
    surety = ContractSuretyCompleted(case_id="R8-001", guarantee_number="31072-0001M",
                                     form=CertificateForm.ELECTRONIC, guarantee_amount=1_200_000)
    with_surety = ok(step(signed, surety))
    assert (with_surety.surety_number, with_surety.status) == ("31072-0001M", S.CONTRACTOR_SIGNED)
    assert ok(step(with_surety, agree)).status is S.CITY_AGREED


# -- CON-2: the concluded contract is registered in the ERP (契約登録) ------------------------

def concluded(at: datetime = T0, **case: object) -> Decision:
    state = in_review().model_copy(update={"status": S.CITY_AGREED, **case})
    return step(state, CitySignatureApplied(case_id="R8-001", document=doc(b"%PDF-final"),
                                            signer_subject="CN=City", signed_at=at), now=at)


def test_con2_conclusion_registers_the_contract_in_the_erp() -> None:
    done = concluded(contractor_id="1234567890123456", period_start=date(2026, 4, 10),
                     period_end=date(2026, 12, 25))
    (erp,) = done.erp
    assert erp.kind is ErpRegistrationKind.CONTRACT
    assert (erp.business_key, erp.contract_number) == ("contract-R8-001", "R8-001")
    assert (erp.contractor_id, erp.contractor_name) == ("1234567890123456", "デモ商事")
    assert (erp.amount_jpy, erp.subject) == (12_000_000, "市道改良工事")
    assert erp.contract_date == date(2026, 4, 1)
    assert (erp.period_start, erp.period_end) == (date(2026, 4, 10), date(2026, 12, 25))


def test_con2_contract_date_is_jst_and_the_default_period_ends_with_the_fiscal_year() -> None:
    late = datetime(2026, 3, 31, 15, 30, tzinfo=UTC)  # 2026-04-01 00:30 JST: fiscal 2026
    (erp,) = concluded(late, contractor_id="1234567890123456").erp
    assert erp.contract_date == date(2026, 4, 1)
    assert (erp.period_start, erp.period_end) == (date(2026, 4, 1), date(2027, 3, 31))
    assert default_period(date(2027, 1, 15)) == (date(2027, 1, 15), date(2027, 3, 31))
    (only_end,) = concluded(contractor_id="1234567890123456",
                            period_end=date(2026, 3, 20)).erp  # 工期 end before 契約日
    assert (only_end.period_start, only_end.period_end) == (date(2026, 3, 20), date(2026, 3, 20))


def test_con2_no_erp_registration_without_the_contractors_company_id() -> None:
    done = concluded()
    assert ok(done).status is S.CONCLUDED
    assert done.erp == []
    assert "企業ID" in (why_not_registered(ok(done)) or "")


def test_con2_the_cloudsign_route_registers_in_the_erp_too() -> None:
    sent = ok(step(ok(step(opened(ContractRoute.CLOUDSIGN), application())), ContractSetPrepared(
        case_id="R8-001", title="請負契約書", document=doc())))
    done = step(sent.model_copy(update={"contractor_id": "1234567890123456"}), ContractConcluded(
        document_id="doc1", case_id="R8-001", title="請負契約書", concluded_at=T0,
        signed_files=(doc(b"%PDF-cs"),), certificate=doc(b"%PDF-cert")))
    assert [e.business_key for e in done.erp] == ["contract-R8-001"]


def test_case_opened_carries_period_and_company_id_and_a_v1_message_without_them_reads() -> None:
    state = ok(step(None, ContractCaseOpened(
        case_id="R8-002", subject="s", amount_yen=1, contractor_network="n",
        contractor_user_id="U", contractor_name="c", city_name="足利市", city_officer=CITY,
        opened_at=T0, contractor_id="1234567890123456", period_start=date(2026, 4, 1),
        period_end=date(2026, 9, 30))))
    assert (state.contractor_id, state.period_start, state.period_end) == (
        "1234567890123456", date(2026, 4, 1), date(2026, 9, 30))
    old = {"case_id": "R8-003", "subject": "s", "amount_yen": 1, "contractor_network": "n",
           "contractor_user_id": "U", "contractor_name": "c", "city_name": "市",
           "city_officer": {"name": "a", "email": "a@b.jp"}, "opened_at": T0.isoformat()}
    assert ContractCaseOpened.model_validate_json(json.dumps(old)).period_start is None
    with pytest.raises(ValidationError, match="工期"):
        ContractCaseOpened.model_validate_json(json.dumps(
            {**old, "period_start": "2026-05-01", "period_end": "2026-04-01"}))
