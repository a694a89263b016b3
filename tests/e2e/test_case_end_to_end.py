"""One procurement case end to end through real parts, and every way it goes wrong (issue 6).

Real Kafka, PostgreSQL, the six reference peers and ``hub run`` as a child process (the
default wiring: every pipeline, connector and contract job, SoftHSM2 city signer); the
contractor signs with the card agent and the virtual IC card over PC/SC (pcscd + vpcd).
The outcome is checked where the outside world keeps it: the ERP peer's own ledger and
the SMTP peer's spool; the signed contract PDF also by poppler's pdfsig (NSS database of
the test roots) and its timestamps by openssl ts -verify, which must agree with the hub.

- the whole case: registration → 申出書 → 契約保証 → set → agreed → both signatures →
  concluded → ERP 契約登録 → mails (CON-4) → 前払金保証 → ERP advance payment;
- a certificate whose 保証金額 and 工期 differ (SUR-2): rejected naming the fields, the
  city's agreement refused (SUR-6), nothing concluded or registered;
- the hub killed with SIGKILL while the city's signing job runs: after a restart the case
  concludes once, one ERP registration each, one 締結のお知らせ per party.

The other ways (expired link, rejection, TSA window) are in test_case_goes_wrong.py.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import pytest

from devkit.pki import ensure_pki
from hub.sample.timeline import CaseTimeline
from schemas.surety import SuretyProduct
from tests.e2e.casestack import (
    CONCLUDED,
    REVIEW,
    CaseStack,
    assert_completed_once,
    case_run,
    contractor_addresses,
    fresh_case,
    steps,
    with_subject,
)
from tests.support.outside_validators import assert_outside_agrees

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.pcsc, pytest.mark.softhsm, pytest.mark.tsa, pytest.mark.smtp,
              pytest.mark.soap]


async def test_whole_case_through_every_real_part(case_stack: CaseStack,
                                                  case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    await stack.start()
    case = fresh_case()
    with case_run(stack, case, timeline) as run:
        outcome = await run.run()
        await assert_completed_once(stack, run)
    assert outcome.company_id
    assert outcome.validation["valid"] is True
    assert [s["field_name"] for s in outcome.validation["signatures"]] == [
        "ContractorSignature", "CitySignature"]
    assert all(s["timestamped_at"] for s in outcome.validation["signatures"])
    roots = ensure_pki(stack.home / "pki").trust_roots
    assert_outside_agrees(outcome.signed_pdf, roots, hub_accepts=True, signatures=2)
    assert steps(timeline) == ["opened", "applied", "surety-completed", "review",
                               "contractor-agreed", "contractor-signed", "city-agreed",
                               "concluded"], steps(timeline)
    accepted = [e.payload.product.value for _, e in timeline.seen if e.type == "surety.accepted"]
    assert accepted == ["performance", "advance-payment"]
    reviews = with_subject(stack.mails_to(contractor_addresses(case)), REVIEW)
    assert len({str(m["Message-ID"]) for m in reviews}) == 1, [m["Subject"] for m in reviews]
    link = timeline.find("econtract.review-link-sent")
    assert link is not None
    body = reviews[0].get_body(("plain",))
    assert body is not None
    # CON-3: the mail carries the random token the contractor used, never the link's id
    assert f"/contract/review/{run.links_used[0]}" in body.get_content()
    assert str(link.payload.link_id) not in body.get_content()
    codes = with_subject(stack.mails_to({case.authorized.email.lower()}), "確認コード")
    assert len(codes) == 1  # the one-time code of the agreement, mailed to the 権限者


async def test_surety_fields_that_differ_are_refused_and_the_case_does_not_conclude(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    await stack.start()
    case = fresh_case()
    with case_run(stack, case, timeline) as run:
        await run.register()
        await run.open_case()
        wrong_amount = case.guarantees[SuretyProduct.PERFORMANCE] - 1_000_000
        wrong_end = case.period[1] - timedelta(days=30)
        number = await run.hand_over(SuretyProduct.PERFORMANCE, guarantee_amount=wrong_amount,
                                     work_period_end=wrong_end)
        answer = await timeline.wait_for(
            "surety.rejected", 60, lambda e: e.payload.contract_number == number
            and any(v.rule_id == "SUR-2" for v in e.payload.violations))
        by_field = {v.field: v for v in answer.payload.violations}
        assert set(by_field) == {"guarantee_amount", "work_period"}, by_field
        for v in by_field.values():
            assert v.rule_id == "SUR-2"
            assert all((v.message_ja, v.message_en, v.next_step_ja, v.next_step_en)), v
        assert f"{wrong_amount:,}円" in by_field["guarantee_amount"].message_ja
        assert f"JPY {wrong_amount:,}" in by_field["guarantee_amount"].message_en
        assert wrong_end.isoformat() in by_field["work_period"].message_en
        await run.contract_set()
        await run.contractor_agrees()
        await run.contractor_signs()
        refused = await run.city_agrees()
        assert refused.status_code == 422, refused.text
        assert [v["rule_id"] for v in refused.json()["detail"]["violations"]] == ["SUR-6"]
        await timeline.poll(3.0)
    assert timeline.find("econtract.concluded") is None
    assert timeline.find("surety.accepted") is None
    assert stack.erp_rows(case.case_id) == []
    assert with_subject(stack.mails_to(contractor_addresses(case)), CONCLUDED) == []


async def test_hub_killed_while_the_city_signs_completes_the_case_once(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    hub = await stack.start()
    case = fresh_case()
    with case_run(stack, case, timeline) as run:
        await run.register()
        await run.open_case()
        await run.surety(SuretyProduct.PERFORMANCE)
        await run.contract_set()
        await run.contractor_agrees()
        await run.contractor_signs()
        agreed = await run.city_agrees()
        assert agreed.status_code == 202, agreed.text
        # The signing job runs every 0.5 s once the case is city-agreed: kill it there.
        await run.timeline.wait_for("econtract.step-recorded", 60,
                                    lambda e: e.payload.status.value == "city-agreed")
        hub.kill()
        await timeline.poll(0.5)
        assert timeline.find("econtract.concluded") is None, "killed too late: already concluded"
        assert hub.proc is not None
        assert hub.proc.returncode == -signal.SIGKILL
        await asyncio.to_thread(hub.start)
        assert hub.starts == 2
        await run.timeline.wait_for("econtract.concluded", 120)
        await run.registered_in_erp("contract")
        await run.surety(SuretyProduct.ADVANCE_PAYMENT)
        await run.registered_in_erp("advance-payment")
        await run.signed_document()
        assert run.outcome.validation["valid"] is True
        assert_outside_agrees(run.outcome.signed_pdf, ensure_pki(stack.home / "pki").trust_roots,
                              hub_accepts=True, signatures=2)
        await assert_completed_once(stack, run)
