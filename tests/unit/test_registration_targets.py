"""Each propagation target's own policy (REG-9, CHG-3, RNW-8 with REG-5, REG-6, RNW-3,
RNW-4): checked when the propagation is decided and again when it is applied; a target
that refuses gets its own rejection and the person a mail saying where the card is and
is not usable, while the source step stands.

Seed 004: 「自治体によっては法人の代表者を認めない場合もある」 (the default policy:
saitama-pref accepts a card held by the legal representative, kawagoe-city does not).
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.registration import World, apply, decide, default_policy_book
from pipelines.registration.common import Outcome
from pipelines.registration.policy import PolicyBook, policy_book_from
from pipelines.registration.rules import apply_decision, run_pending
from pipelines.registration.scenario import evaluate
from pipelines.registration.world import PropagationStatus, usable_card
from schemas.mail import MailKind, MailRequested
from schemas.registration import Domain, RegistrationRejected
from tests.unit.test_registration_rules import (
    BOTH,
    CONTRACTOR,
    NEW_CARD,
    NOW,
    REPRESENTATIVE,
    card,
    change,
    command_of,
    events_of,
    qual,
    qualification_update,
    register,
    renew,
    scenario,
)

NOW_DT = datetime.fromisoformat(NOW)
REP_CARD = card(holder=REPRESENTATIVE)
NIGHT = NOW_DT + timedelta(days=1, hours=-7)  # the next day, 03:00 JST
ENTITIES = ("saitama-pref", "kawagoe-city")


def world_of(*rows: dict[str, Any]) -> World:
    world = World()
    for row in rows:
        apply(world, qualification_update(row), NOW_DT)
    return world


def refusals(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in events_of(answer, "registration.rejected") if e["propagated_from"]]


# --- decided: REG-5 at the target ------------------------------------------------------

def test_REG_5_representative_card_is_not_applied_at_once_where_the_entity_refuses_it() -> None:
    answer = evaluate(scenario(register(the_card=REP_CARD, apply_now_to=("kawagoe-city",)),
                               qualifications=BOTH))
    assert answer["decision"] == "accepted"  # the source registration stands
    assert [e["procuring_entity"] for e in events_of(
        answer, "registration.card-registered")] == ["saitama-pref"]
    assert events_of(answer, "registration.propagation-scheduled") == []
    (refused,) = refusals(answer)
    assert (refused["procuring_entity"], refused["propagated_from"]) == (
        "kawagoe-city", "saitama-pref")
    assert [v["rule_id"] for v in refused["violations"]] == ["REG-5"]
    assert refused["violations"][0]["message_en"]
    assert refused["violations"][0]["next_step_ja"]
    kinds = [m["kind"] for m in answer["mails"]]
    assert kinds == ["registration", "propagation-refused"]
    mail = answer["mails"][1]
    assert mail["to"] == ["ic-card@example.jp"]  # the ICカード利用部署 address (NTF-1)
    assert mail["values"]["not_usable_at"] == "川越市（工事）"
    assert mail["values"]["usable_at"] == "埼玉県（工事）"
    assert "[REG-5]" in mail["values"]["reasons"]


def test_REG_5_the_nightly_propagation_is_not_scheduled_either() -> None:
    answer = evaluate(scenario(register(the_card=REP_CARD), qualifications=BOTH))
    assert answer["decision"] == "accepted"
    assert events_of(answer, "registration.propagation-scheduled") == []
    assert [r["procuring_entity"] for r in refusals(answer)] == ["kawagoe-city"]


def test_REG_5_a_later_change_at_the_refusing_entity_is_refused() -> None:
    answer = evaluate(scenario(
        change(entity="kawagoe-city", the_card=REP_CARD),
        history=(register(the_card=REP_CARD, apply_now_to=("kawagoe-city",)),),
        qualifications=BOTH))
    assert answer["decision"] == "rejected"
    assert answer["rule_ids"] == ["CHG-1"]


def test_REG_5_the_contractors_card_still_reaches_both() -> None:
    answer = evaluate(scenario(register(apply_now_to=("kawagoe-city",)), qualifications=BOTH))
    assert refusals(answer) == []
    assert [m["kind"] for m in answer["mails"]] == ["registration"]
    (scheduled,) = events_of(answer, "registration.propagation-scheduled")
    assert scheduled["target_entity"] == "kawagoe-city"


def test_REG_6_an_expired_card_is_refused_at_the_target_when_applied_too() -> None:
    book, world = default_policy_book(), world_of(*BOTH)
    short = card(not_after="2026-11-24T23:59:59+09:00")
    decision = decide(world, command_of(register(the_card=short)), book, NOW_DT)
    apply_decision(world, decision, NOW_DT, book)
    (pending,) = world.propagations.values()
    # The batch already skips an expired card before asking the target (REG-6 there too).
    updated, events = run_pending(world, pending, NIGHT, book)
    assert (updated.status, updated.note, events) == (PropagationStatus.SKIPPED,
                                                      "card expired", ())


# --- applied: the target is asked again ------------------------------------------------

def test_REG_5_checked_again_when_the_nightly_batch_applies_it() -> None:
    """Overnight Kawagoe's 資格審査情報 names another 契約者: the card stops there."""
    book, world = default_policy_book(), world_of(*BOTH)
    decision = decide(world, command_of(register()), book, NOW_DT)
    apply_decision(world, decision, NOW_DT, book)
    (pending,) = world.propagations.values()
    apply(world, qualification_update(qual("kawagoe-city", contractor_name="川越 三郎")), NOW_DT)
    updated, events = run_pending(world, pending, NIGHT, book)
    assert updated.status is PropagationStatus.SKIPPED
    assert "REG-5" in updated.note
    rejected = [e for e in events if isinstance(e, RegistrationRejected)]
    mails = [e for e in events if isinstance(e, MailRequested)]
    assert [(r.procuring_entity, r.propagated_from) for r in rejected] == [
        ("kawagoe-city", "saitama-pref")]
    assert [m.kind for m in mails] == [MailKind.PROPAGATION_REFUSED]
    key = command_of(register()).card.key  # type: ignore[attr-defined]
    assert usable_card(world, key, NIGHT, entity="kawagoe-city") is None
    assert usable_card(world, key, NIGHT, entity="saitama-pref") is not None


# --- renewal: RNW-4 and RNW-3 at the target ---------------------------------------------

REGISTERED_AT_BOTH = (register(apply_now_to=("kawagoe-city",)),)


def test_RNW_4_new_card_of_the_representative_is_refused_at_kawagoe_old_card_stays() -> None:
    """Both renew after a change of representative; only Saitama accepts his card."""
    book = _book(**{e: {"renewal_allows_holder_change": True} for e in ENTITIES})
    world = world_of(*BOTH)
    apply_decision(world, decide(world, command_of(REGISTERED_AT_BOTH[0]), book, NOW_DT),
                   NOW_DT, book)
    new = dict(NEW_CARD, holder_name=REPRESENTATIVE)
    decision = decide(world, command_of(renew(new=new, apply_now_to=("kawagoe-city",))), book,
                      NOW_DT)
    assert decision.outcome is Outcome.ACCEPTED
    (refused,) = [e for e in decision.events if isinstance(e, RegistrationRejected)]
    assert (refused.procuring_entity, refused.propagated_from) == ("kawagoe-city",
                                                                   "saitama-pref")
    assert [v.rule_id for v in refused.violations] == ["RNW-4"]
    assert [m.kind for m in decision.mails] == [MailKind.RENEWAL, MailKind.PROPAGATION_REFUSED]
    apply_decision(world, decision, NOW_DT, book)
    old_key, new_key = (card()["issuer"], "121"), (NEW_CARD["issuer"], "122")
    assert usable_card(world, new_key, NOW_DT, entity="saitama-pref") is not None
    assert usable_card(world, new_key, NOW_DT, entity="kawagoe-city") is None
    assert usable_card(world, old_key, NOW_DT, entity="kawagoe-city") is not None


def _book(**flags: dict[str, Any]) -> PolicyBook:
    text = resources.files("pipelines.registration").joinpath(
        "default_policy.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for entry in data["entity"]:
        entry.update(flags.get(entry["code"], {}))
    return policy_book_from(data)


def test_RNW_3_a_holder_change_is_refused_where_the_entity_wants_a_registration() -> None:
    book = _book(**{"saitama-pref": {"renewal_allows_holder_change": True,
                                     "legal_representative_may_hold_card": True},
                    "kawagoe-city": {"legal_representative_may_hold_card": True}})
    world = world_of(*BOTH)
    apply_decision(world, decide(world, command_of(REGISTERED_AT_BOTH[0]), book, NOW_DT),
                   NOW_DT, book)
    new = dict(NEW_CARD, holder_name=REPRESENTATIVE)
    decision = decide(world, command_of(renew(new=new, apply_to_other_entities=True)), book,
                      NOW_DT)
    assert decision.outcome is Outcome.ACCEPTED
    (refused,) = [e for e in decision.events if isinstance(e, RegistrationRejected)]
    assert [v.rule_id for v in refused.violations] == ["RNW-3"]


# --- the property ----------------------------------------------------------------------

HOLDERS = (CONTRACTOR, REPRESENTATIVE, "他人 花子")


def accepted_directly(book: PolicyBook, entity: str, facts: dict[str, Any],
                      at: datetime) -> bool:
    """Would ``entity`` accept this card if the person registered it there, alone?"""
    fresh = world_of(qual(entity))
    fresh_card = dict(facts, authenticated_at=(at - timedelta(minutes=1)).isoformat())
    decision = decide(fresh, command_of(register(entity=entity, the_card=fresh_card)), book, at)
    return decision.outcome is Outcome.ACCEPTED


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rep_ok=st.tuples(st.booleans(), st.booleans()),
       holder_change_ok=st.tuples(st.booleans(), st.booleans()),
       holder=st.sampled_from(HOLDERS), new_holder=st.sampled_from(HOLDERS),
       source=st.sampled_from(ENTITIES), at_once=st.booleans(), renew_too=st.booleans(),
       lapsed_at_target=st.booleans())
def test_a_card_is_active_at_an_entity_only_if_that_entity_would_accept_it_directly(
        rep_ok: tuple[bool, bool], holder_change_ok: tuple[bool, bool], holder: str,
        new_holder: str, source: str, at_once: bool, renew_too: bool,
        lapsed_at_target: bool) -> None:
    book = _book(**{e: {"legal_representative_may_hold_card": r,
                        "renewal_allows_holder_change": h}
                    for e, r, h in zip(ENTITIES, rep_ok, holder_change_ok, strict=True)})
    other = next(e for e in ENTITIES if e != source)
    world = world_of(qual(source), qual(other, qualified_until="2026-11-24")
                     if lapsed_at_target else qual(other))
    first = card(holder=holder)
    step = register(entity=source, the_card=first, apply_now_to=(other,) if at_once else ())
    apply_decision(world, decide(world, command_of(step), book, NOW_DT), NOW_DT, book)
    for pending in list(world.propagations.values()):
        if pending.status is PropagationStatus.PENDING:
            run_pending(world, pending, NIGHT, book)
    cards = [first]
    if renew_too:
        later = NIGHT + timedelta(hours=7)  # 10:00 JST, inside the e-bid window
        new = card("122", holder=new_holder, not_before="2026-11-01T00:00:00+09:00",
                   not_after="2031-11-01T00:00:00+09:00",
                   auth=(later - timedelta(minutes=1)).isoformat())
        old = dict(first, authenticated_at=(later - timedelta(minutes=2)).isoformat())
        cmd = renew(entity=source, old=old, new=new, apply_now_to=(other,) if at_once else (),
                    apply_to_other_entities=not at_once)
        apply_decision(world, decide(world, command_of(cmd), book, later), later, book)
        for pending in list(world.propagations.values()):
            if pending.status is PropagationStatus.PENDING:
                run_pending(world, pending, later, book)
        cards.append(new)
    at = NIGHT + timedelta(days=1, hours=7)
    for facts in cards:
        key = (facts["issuer"], facts["serial"])
        for entity in ENTITIES:
            if usable_card(world, key, at, entity=entity, domain=Domain.WORKS) is not None:
                assert accepted_directly(book, entity, facts, at), (entity, facts["holder_name"])
