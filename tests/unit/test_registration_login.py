"""Who may log in, for which entity and domain (REG-1, RNW-7, CHG-2, REG-6, WIN-2), asked
as scenarios (``hub rules evaluate``, command ``registration.login``): the decision the
card-agent gateway takes at login and on every call of a session.

Also here: announced maintenance windows (WIN-2) for registration and propagation, and
the one date format of rule texts (和暦 with the Western year).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from pipelines.registration import decide, default_policy_book
from pipelines.registration.common import Outcome
from pipelines.registration.policy import (
    MaintenanceWindow,
    PolicyError,
    WindowStop,
    parse_announced,
    policy_book_from,
)
from pipelines.registration.rules import apply_decision
from pipelines.registration.scenario import ScenarioError, evaluate
from pipelines.registration.world import PropagationStatus
from schemas.envelope import JST
from tests.unit.test_registration_rules import (
    BOTH,
    MLIT,
    MLIT_REG,
    NEW_CARD,
    NOW,
    card,
    command_of,
    register,
    renew,
    scenario,
)
from tests.unit.test_registration_targets import _book, world_of


def login(*, entity: str = "saitama-pref", system: str = "e-bid", domain: str = "works",
          serial: str = "121") -> dict[str, Any]:
    return {"type": "registration.login", "payload": {
        "procuring_entity": entity, "system": system, "domain": domain,
        "card": {"issuer": card()["issuer"], "serial": serial}}}


REGISTERED = (register(),)
RENEWED = (register(), renew())


@pytest.mark.parametrize(("name", "command", "history", "rule_ids"), [
    ("registered-works-logs-in", login(), REGISTERED, []),
    ("unknown-card-REG-1", login(serial="999"), REGISTERED, ["REG-1"]),
    ("goods-not-registered-CHG-2", login(domain="goods"), REGISTERED, ["CHG-2"]),
    ("other-entity-not-registered-REG-1", login(entity="kawagoe-city"), REGISTERED,
     ["REG-1"]),
    ("other-network-REG-1", login(entity="yamaguchi-city"), REGISTERED, ["REG-1"]),
    ("unknown-entity-REG-3", login(entity="nowhere-city"), REGISTERED, ["REG-3"]),
    ("renewed-away-RNW-7", login(), RENEWED, ["RNW-7"]),
    ("new-card-after-renewal-logs-in", login(serial="122"), RENEWED, []),
])
def test_login_decisions(name: str, command: dict[str, Any],
                         history: tuple[dict[str, Any], ...], rule_ids: list[str]) -> None:
    answer = evaluate(scenario(command, history=history, qualifications=BOTH))
    assert answer["rule_ids"] == rule_ids, name
    assert answer["decision"] == ("rejected" if rule_ids else "accepted")
    if rule_ids:
        (violation,) = answer["violations"]
        assert violation["message_ja"]
        assert violation["message_en"]
        assert violation["next_step_ja"]
        assert violation["next_step_en"]
        assert "session" not in answer
    else:
        assert answer["session"]["user_id"] == "1234567890"
        assert len(answer["session"]["company_id"]) == 16
        assert (answer["session"]["procuring_entity"], answer["session"]["domain"]) == (
            "saitama-pref", "works")


def test_login_with_an_expired_card_is_refused_reg6() -> None:
    answer = evaluate(scenario(login(), history=(register(now=NOW),), qualifications=BOTH,
                               now="2030-11-21T10:00:00+09:00"))
    assert answer["rule_ids"] == ["REG-6"]


def test_login_attempt_that_does_not_fit_its_schema_is_an_answer() -> None:
    answer = evaluate(scenario({"type": "registration.login", "payload": {"domain": "x"}}))
    assert answer["decision"] == "rejected"
    assert answer["rule_ids"]
    with pytest.raises(ScenarioError, match="command"):
        evaluate(scenario({"type": "registration.login"}))


# --- WIN-2: announced maintenance windows ---------------------------------------------

IN_WINDOW = "2024-10-23T19:00:00+09:00"  # seed 000: 2024年 10月23日(水) 18:30 ~ 23:00


def mlit_register(now: str) -> dict[str, Any]:
    at = datetime.fromisoformat(now)
    return register(**MLIT_REG, the_card=card(
        not_before="2023-01-01T00:00:00+09:00",
        auth=(at - timedelta(minutes=1)).isoformat()))


def test_WIN_2_registration_inside_an_announced_window_answers_its_end() -> None:
    answer = evaluate(scenario(mlit_register(IN_WINDOW), qualifications=MLIT, now=IN_WINDOW))
    assert (answer["decision"], answer["rule_ids"]) == ("rejected", ["WIN-2"])
    (violation,) = answer["violations"]
    assert "令和6年（2024年）10月23日 23:00" in violation["next_step_ja"]
    assert "2024-10-23T23:00+09:00" in violation["next_step_en"]
    after = "2024-10-23T23:00:00+09:00"
    assert evaluate(scenario(mlit_register(after), qualifications=MLIT,
                             now=after))["decision"] == "accepted"


def test_WIN_2_a_signing_window_does_not_stop_registration() -> None:
    at = "2024-10-03T03:00:00+09:00"  # seed 000: the timestamp service, 00:00-06:00
    assert evaluate(scenario(mlit_register(at), qualifications=MLIT,
                             now=at))["decision"] == "accepted"


def test_WIN_2_login_inside_a_whole_system_window() -> None:
    history = (mlit_register("2024-10-23T10:00:00+09:00"),)
    answer = evaluate(scenario(login(entity="mlit", system="e-contract"), history=history,
                               qualifications=MLIT, now=IN_WINDOW))
    assert answer["rule_ids"] == ["WIN-2"]


def test_WIN_2_windows_read_as_the_seeds_announce_them() -> None:
    window = parse_announced("2024年 11月17日(日) 23:00 ~ 2024年 11月18日(月) 6:00",
                             WindowStop.SIGNING)
    assert window == MaintenanceWindow(datetime(2024, 11, 17, 23, 0, tzinfo=JST),
                                       datetime(2024, 11, 18, 6, 0, tzinfo=JST),
                                       WindowStop.SIGNING)
    full_width = parse_announced("２０２４年１０月２３日（水）１８：３０～"
                                 "２０２４年１０月２３日（水）２３：００", WindowStop.ALL)
    assert full_width.end == datetime(2024, 10, 23, 23, 0, tzinfo=JST)
    with pytest.raises(PolicyError, match="announced window"):
        parse_announced("10月23日 18:30 ~ 23:00", WindowStop.ALL)


def test_WIN_2_date_start_end_form_runs_past_midnight() -> None:
    book = _book(**{"kawagoe-city": {"maintenance": [
        {"date": "2026-11-24", "start": "23:00", "end": "06:00", "stops": "registration"}]}})
    policy = book.member("kawagoe-city", "saitama-joint")
    assert policy is not None
    assert policy.maintenance_at(datetime(2026, 11, 25, 5, 0, tzinfo=JST),
                                 WindowStop.REGISTRATION)
    assert policy.maintenance_at(datetime(2026, 11, 25, 5, 0, tzinfo=JST),
                                 WindowStop.SIGNING) is None
    with pytest.raises(PolicyError, match="stops"):
        _book(**{"kawagoe-city": {"maintenance": [
            {"date": "2026-11-24", "start": "23:00", "end": "06:00", "stops": "lunch"}]}})


def test_WIN_2_an_at_once_propagation_to_an_entity_in_a_window_is_held() -> None:
    now = datetime.fromisoformat(NOW)
    book = _book(**{"kawagoe-city": {"maintenance": [
        {"date": "2026-11-24", "start": "09:00", "end": "12:00", "stops": "registration"}]}})
    world = world_of(*BOTH)
    decision = decide(world, command_of(register(apply_now_to=("kawagoe-city",))), book, now)
    assert decision.outcome is Outcome.ACCEPTED
    events = apply_decision(world, decision, now, book)
    assert [type(e).__name__ for e in events].count("CardRegistered") == 1  # not applied yet
    (pending,) = world.propagations.values()
    assert pending.status is PropagationStatus.PENDING  # the batch applies it after 12:00


# --- one date format -------------------------------------------------------------------

@pytest.mark.parametrize(("step", "history", "now", "rule", "ja", "en"), [
    # RNW-1 used to say 2026-06-09 while REG-6 said 令和.
    (renew(old=card(not_after="2026-06-09T23:59:59+09:00")),
     (register(the_card=card(not_after="2026-06-09T23:59:59+09:00"),
               now="2026-06-01T10:00:00+09:00"),),
     "2026-06-10T10:00:00+09:00", "RNW-1", "令和8年（2026年）6月9日", "2026-06-09"),
    (register(the_card=card(not_after="2026-06-09T23:59:59+09:00")), (),
     "2026-06-10T10:00:00+09:00", "REG-6", "令和8年（2026年）6月9日", "2026-06-09"),
])
def test_dates_shown_to_people_are_wareki_with_the_western_year(
        step: dict[str, Any], history: tuple[dict[str, Any], ...], now: str, rule: str,
        ja: str, en: str) -> None:
    at = datetime.fromisoformat(now)
    for key in ("card", "old_card", "new_card"):
        if key in step["payload"]:
            step["payload"][key] = dict(step["payload"][key],
                                        authenticated_at=(at - timedelta(minutes=1)).isoformat())
    if "new_card" in step["payload"]:
        step["payload"]["new_card"] = dict(
            NEW_CARD, authenticated_at=(at - timedelta(seconds=30)).isoformat())
    for h in history:
        t = datetime.fromisoformat(h["now"])
        h["payload"]["card"] = dict(h["payload"]["card"],
                                    authenticated_at=(t - timedelta(minutes=1)).isoformat())
    answer = evaluate(scenario(step, history=history, now=now))
    (violation,) = [v for v in answer["violations"] if v["rule_id"] == rule]
    assert ja in violation["message_ja"]
    assert en in violation["message_en"]
    assert "-" not in violation["message_ja"].split("（")[1]


def test_the_default_policy_loads_the_seed_windows() -> None:
    mlit = default_policy_book().member("mlit", "mlit")
    assert mlit is not None
    assert len(mlit.maintenance) == 5
    assert {w.stops for w in mlit.maintenance} == {WindowStop.ALL, WindowStop.SIGNING}
    assert policy_book_from({"entity": [dict(_raw_mlit(), maintenance=[])]})


def _raw_mlit() -> dict[str, Any]:
    return {"code": "mlit", "system": "e-contract", "name": "国土交通省", "network": "mlit",
            "id_scheme": "user-id", "legal_representative_may_hold_card": True,
            "reissued_card": "renewal", "renewal_allows_holder_change": True,
            "service_hours": "", "weekdays_only": False, "closed_on_holidays": False,
            "year_end_closure": False, "low_validity_days": 30, "auth_max_age_minutes": 30}

