"""The procurement case when it goes wrong on the way, end to end through real parts (issue 6).

The same stack as test_case_end_to_end.py (real Kafka, PostgreSQL, the reference peers,
``hub run`` as a child process, the card agent with the virtual IC card over PC/SC):

- an expired review link (CON-3): agreeing through it is refused with CON-3, the expiry
  job marks it, the contractor asks for a re-send and the new link completes the case;
- a contractor who rejects the contract set (CON-2): the case is rejected with the
  reason, the old link stops working, the city prepares a new set and the case completes;
- a TSA maintenance window in the middle of signing (WIN-3): inside one window the card
  agent holds the contractor's signature (PeerInMaintenance, the job stays pending);
  inside a second the city's signing job waits; after it the case concludes, once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from connectors._shared.errors import PeerInMaintenance
from hub.sample.driver import CaseRun
from hub.sample.timeline import CaseTimeline
from schemas.surety import SuretyProduct
from tests.e2e.casestack import (
    REVIEW,
    CaseStack,
    assert_completed_once,
    case_run,
    conclude_and_pay,
    contractor_addresses,
    fresh_case,
    steps,
    with_subject,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.pcsc, pytest.mark.softhsm, pytest.mark.tsa, pytest.mark.smtp,
              pytest.mark.soap]

LINK_TTL_S = 8.0


async def up_to_the_contract_set(run: CaseRun) -> None:
    await run.register()
    await run.open_case()
    await run.surety(SuretyProduct.PERFORMANCE)
    await run.contract_set()


async def sleep_until(at: datetime) -> None:
    await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))


async def test_an_expired_link_is_refused_and_a_resent_one_completes_the_case(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    await stack.start(HUB_CONTRACT__REVIEW_LINK_TTL_HOURS=str(LINK_TTL_S / 3600))
    case = fresh_case()
    with case_run(stack, case, timeline) as run:
        await up_to_the_contract_set(run)
        first = await run.review_link()  # the token, as mailed
        sent = await timeline.wait_for("econtract.review-link-sent", 30)
        assert sent.payload.expires_at - sent.occurred_at <= timedelta(seconds=LINK_TTL_S + 1)
        await sleep_until(sent.payload.expires_at + timedelta(seconds=0.3))
        refused = await asyncio.to_thread(run.review, first, "agree", code="000000")
        assert refused.status_code == 410, refused.text
        (violation,) = refused.json()["detail"]["violations"]
        assert violation["rule_id"] == "CON-3"
        assert "有効期限" in violation["message_ja"]
        assert "expired" in violation["message_en"]
        assert violation["next_step_en"]
        await timeline.wait_for("econtract.review-link-expired", 30,
                                lambda e: e.payload.link_id == sent.payload.link_id)
        second = await run.ask_resend(first)
        assert second != first
        await run.contractor_agrees(second)
        await run.contractor_signs()
        await conclude_and_pay(run)
        await run.signed_document()
        await assert_completed_once(stack, run)
    # the set, the link's expiry and the re-send each leave the case in review (CON-3)
    assert steps(timeline) == ["opened", "applied", "surety-completed", "review", "review",
                               "review", "contractor-agreed", "contractor-signed",
                               "city-agreed", "concluded"], steps(timeline)
    reviews = with_subject(stack.mails_to(contractor_addresses(case)), REVIEW)
    reviews = list({str(m["Message-ID"]): m for m in reviews}.values())
    bodies = [m.get_body(("plain",)) for m in reviews]
    texts = [b.get_content() for b in bodies if b is not None]
    assert len(texts) == 2, [m["Subject"] for m in reviews]
    assert [str(first) in t for t in texts].count(True) == 1
    assert [str(second) in t for t in texts].count(True) == 1


async def test_a_contractor_who_rejects_gets_a_new_set_and_the_case_completes(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    await stack.start()
    case = fresh_case()
    reason = "工期の記載に誤りがあります / the work period is wrong"
    with case_run(stack, case, timeline) as run:
        await up_to_the_contract_set(run)
        rejected = await run.contractor_rejects(reason)
        assert rejected.payload.step == "econtract.contractor-rejected"
        first = run.links_used[-1]
        listed = await asyncio.to_thread(run.staff, "GET", "/contracts",
                                         params={"status": "rejected"})
        assert case.case_id in listed.text, listed.text
        stale = await asyncio.to_thread(run.review, first, "agree", code="000000")
        assert stale.status_code == 410, stale.text
        assert [v["rule_id"] for v in stale.json()["detail"]["violations"]] == ["CON-3"]
        await run.contract_set()  # the city prepares a new set
        second = await run.review_link()
        assert second != first
        await run.contractor_agrees(second)
        await run.contractor_signs()
        await conclude_and_pay(run)
        await run.signed_document()
        await assert_completed_once(stack, run)
    assert steps(timeline) == ["opened", "applied", "surety-completed", "review", "rejected",
                               "review", "contractor-agreed", "contractor-signed",
                               "city-agreed", "concluded"], steps(timeline)
    reviews = with_subject(stack.mails_to(contractor_addresses(case)), REVIEW)
    assert len({str(m["Message-ID"]) for m in reviews}) == 2


def fixed(begin: datetime, end: datetime) -> str:
    return f"fixed {begin.isoformat(timespec='seconds')} {end.isoformat(timespec='seconds')}"


async def test_a_tsa_window_in_the_middle_of_signing_holds_it_and_the_case_completes_once(
        case_stack: CaseStack, case_timeline: CaseTimeline) -> None:
    stack, timeline = case_stack, case_timeline
    # Two announced windows (WIN-3), both known to the hub and the contractor's agent: the
    # first after the contractor agreed, the second after the city agreed.
    # (55 s: registration, the case, the set, and the agreement with its mailed code)
    first_opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=55)
    first = (first_opens, first_opens + timedelta(seconds=8))
    second = (first[1] + timedelta(seconds=10), first[1] + timedelta(seconds=22))
    windows = (fixed(*first), fixed(*second))
    await stack.start(HUB_TSA_MAINTENANCE=json.dumps(windows))
    case = fresh_case()
    with case_run(stack, case, timeline, tsa_maintenance=windows) as run:
        await up_to_the_contract_set(run)
        await run.contractor_agrees()
        assert datetime.now(UTC) < first[0], "the case reached agreement too late for the test"
        await sleep_until(first[0] + timedelta(seconds=0.2))
        with pytest.raises(PeerInMaintenance) as held:
            await run.contractor_signs()
        assert held.value.until == first[1]
        jobs = await asyncio.to_thread(run.agent.gateway.jobs)
        assert [j["status"] for j in jobs if case.case_id in j["subject"]] == ["pending"]
        await sleep_until(first[1] + timedelta(seconds=0.2))
        await run.contractor_signs()
        assert datetime.now(UTC) < second[0], "the contractor signed too late for the test"
        await sleep_until(second[0] + timedelta(seconds=0.2))
        agreed = await run.city_agrees()
        assert agreed.status_code == 202, agreed.text
        await timeline.wait_for("econtract.step-recorded", 30,
                                lambda e: e.payload.status.value == "city-agreed")
        while datetime.now(UTC) < second[1] - timedelta(seconds=0.5):
            await timeline.poll(0.5)
            assert timeline.find("econtract.concluded") is None, "signed inside the window"
        concluded = await timeline.wait_for("econtract.concluded", 60)
        assert concluded.payload.concluded_at >= second[1]
        assert stack.hub is not None
        said = stack.hub.log(tail=1_000_000)
        assert "city signing held until" in said  # held (WIN-3), never logged as a failure
        assert "city signing of case" not in said
        await run.registered_in_erp("contract")
        await run.surety(SuretyProduct.ADVANCE_PAYMENT)
        await run.registered_in_erp("advance-payment")
        await run.signed_document()
        assert run.outcome.validation["valid"] is True
        await assert_completed_once(stack, run)
