"""Table-driven tests of the registration rules: every REG, CHG and RNW rule ID has an
accepting and a rejecting scenario, named by rule ID; scenarios run through the
scenario runner (pipelines.registration.scenario.evaluate), as ``hub rules evaluate``.

The builders here are shared with the other registration tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from pipelines.registration import World, apply, decide, default_policy_book
from pipelines.registration.common import Outcome
from pipelines.registration.rules import apply_decision
from pipelines.registration.scenario import evaluate
from pipelines.registration.world import usable_card
from schemas.mail import CARD_NOTICE_VALUE_KEYS
from schemas.qualification import QualificationUpdated
from schemas.registry import REGISTRY, Payload

NOW = "2026-11-24T10:00:00+09:00"  # a Tuesday, inside the e-bid window
ISSUER = "OU=CoreCA,O=eJapan2 Tech Center,C=JP"
USER = "1234567890"
OTHER_USER = "2222222222"
CONTRACTOR = "北東 次郎"
REPRESENTATIVE = "日立 二郎"
ADDRESS = "北東市中央町2丁目3番4号"


def qual(entity: str = "saitama-pref", domain: str = "works", user_id: str = USER,
         **over: Any) -> dict[str, Any]:
    row = {"entity": entity, "domain": domain, "user_id": user_id,
           "trade_name": "北東組株式会社", "postal_code": "123-0000",
           "head_office_address": ADDRESS, "representative_name": REPRESENTATIVE,
           "representative_title": "代表取締役社長", "contractor_name": CONTRACTOR,
           "corporate_number": "5835678256246"}
    row.update(over)
    return row


def card(serial: str = "121", *, holder: str = CONTRACTOR, issuer: str = ISSUER,
         address: str = ADDRESS, not_before: str = "2025-11-20T00:00:00+09:00",
         not_after: str = "2030-11-20T23:59:59+09:00",
         auth: str | None = "2026-11-24T09:58:00+09:00") -> dict[str, Any]:
    return {"issuer": issuer, "serial": serial, "holder_name": holder,
            "holder_address": address, "holder_organization": "北東組株式会社",
            "not_before": not_before, "not_after": not_after, "authenticated_at": auth}


def contact(email: str = "ic-card@example.jp", confirm: str | None = None,
            **over: Any) -> dict[str, Any]:
    data = {"contact_name": "営業部", "postal_code": "123-0000", "address": ADDRESS,
            "person_name": "日立 次郎", "phone": "044-812-7358", "fax": "044-812-8681",
            "email": email, "email_confirmation": confirm or email}
    data.update(over)
    return data


MAIN_CONTACT = contact("hokuto-001@example.jp")


def register(*, entity: str = "saitama-pref", system: str = "e-bid", domain: str = "works",
             user_id: str = USER, the_card: dict[str, Any] | None = None,
             trade_name: str = "北東組株式会社", password_verified: bool = True,
             rep: dict[str, Any] | None = MAIN_CONTACT, dept: dict[str, Any] | None = None,
             apply_now_to: tuple[str, ...] = (), now: str | None = None) -> dict[str, Any]:
    payload = {"procuring_entity": entity, "system": system, "domain": domain,
               "user_id": user_id, "trade_name": trade_name,
               "password_verified": password_verified, "card": the_card or card(),
               "department_name": "営業部", "representative_contact": rep,
               "card_department_contact": dept or contact(), "apply_now_to": list(apply_now_to)}
    step: dict[str, Any] = {"type": "registration.card-registration-requested",
                            "payload": payload}
    if now:
        step["now"] = now
    return step


def change(*, entity: str = "saitama-pref", system: str = "e-bid", domain: str = "works",
           user_id: str = USER, the_card: dict[str, Any] | None = None,
           dept: dict[str, Any] | None = None, apply_to_other_entities: bool = False,
           apply_now_to: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "registration.contact-change-requested", "payload": {
        "procuring_entity": entity, "system": system, "domain": domain, "user_id": user_id,
        "card": the_card or card(), "card_department_contact": dept or contact("new@example.jp"),
        "apply_to_other_entities": apply_to_other_entities, "apply_now_to": list(apply_now_to)}}


NEW_CARD = card("122", not_before="2026-11-01T00:00:00+09:00",
                not_after="2031-11-01T00:00:00+09:00", auth="2026-11-24T09:59:00+09:00")


def renew(*, entity: str = "saitama-pref", system: str = "e-bid", domain: str = "works",
          user_id: str = USER, old: dict[str, Any] | None = None,
          new: dict[str, Any] | None = None, apply_to_other_entities: bool = False,
          apply_now_to: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "registration.card-renewal-requested", "payload": {
        "procuring_entity": entity, "system": system, "domain": domain, "user_id": user_id,
        "old_card": old or card(), "new_card": new or NEW_CARD,
        "apply_to_other_entities": apply_to_other_entities, "apply_now_to": list(apply_now_to)}}


def scenario(command: dict[str, Any], *, history: tuple[dict[str, Any], ...] = (),
             qualifications: tuple[dict[str, Any], ...] = (qual(),), now: str = NOW,
             acted_at: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"policy": "default", "now": now,
                            "state": {"qualifications": list(qualifications)},
                            "history": list(history), "command": command}
    if acted_at:
        data["acted_at"] = acted_at
    return data


BOTH = (qual(), qual("kawagoe-city"))
MLIT = (qual("mlit"),)
MLIT_REG = {"entity": "mlit", "system": "e-contract"}


def events_of(answer: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in answer["events"] if e["type"] == kind]


def _hint(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda a: any(text in v["next_step_ja"] for v in a["violations"])


def _no_mail(a: dict[str, Any]) -> bool:
    return a["mails"] == [] and len(events_of(a, "registration.rejected")) == 1


def _registered(a: dict[str, Any]) -> dict[str, Any]:
    return events_of(a, "registration.card-registered")[0]


def _scheduled(a: dict[str, Any]) -> list[dict[str, Any]]:
    return events_of(a, "registration.propagation-scheduled")


OK, NO, HOLD = "accepted", "rejected", "needs-confirmation"
R1 = register()
R1_AT_BOTH = register(apply_now_to=("kawagoe-city",))
RENEWED = renew()

CASES = [
    # REG-1 one card, one user ID, forever
    ("REG-1-accept-new-card", scenario(register()), OK, set(),
     lambda a: _registered(a)["card"]["serial"] == "121"),
    ("REG-1-reject-card-of-other-user",
     scenario(register(user_id=OTHER_USER), history=(R1,),
              qualifications=(qual(), qual(user_id=OTHER_USER))), NO, {"REG-1"}, None),
    ("REG-1-reject-card-already-registered-here", scenario(register(), history=(R1,)), NO,
     {"REG-1"}, None),
    # REG-2 several cards per user ID, sharing company data
    ("REG-2-accept-second-card-same-company-id",
     scenario(register(the_card=card("122"), rep=None), history=(R1,)), OK, set(),
     lambda a: not _registered(a)["first_registration"]),
    # REG-3 lookup and its hints
    ("REG-3-accept-abbreviated-trade-name-normalised",
     scenario(register(trade_name="北東組（株）")), OK, set(), None),
    ("REG-3-accept-yamaguchi-vendor-number-without-password",
     scenario(register(entity="yamaguchi-city", user_id="A12345678", password_verified=False),
              qualifications=(qual("yamaguchi-city", user_id="A12345678"),)), OK, set(), None),
    ("REG-3-reject-yamaguchi-needs-9-characters",
     scenario(register(entity="yamaguchi-city", user_id="1234567890"),
              qualifications=(qual("yamaguchi-city", user_id="1234567890"),)), NO, {"REG-3"},
     None),
    ("REG-3-reject-confusable-user-id-hint", scenario(register(user_id="l234567890")), NO,
     {"REG-3"}, _hint("数字の0")),
    ("REG-3-reject-fullwidth-user-id-hint", scenario(register(user_id="１２３４５６７８９０")), NO,
     {"REG-3"}, _hint("半角英数字")),
    ("REG-3-reject-wrong-domain-hint", scenario(register(domain="goods")), NO, {"REG-3"},
     _hint("工事／物品")),
    ("REG-3-reject-trade-name-mismatch", scenario(register(trade_name="南西組株式会社")), NO,
     {"REG-3"}, _hint("省略せず")),
    ("REG-3-reject-password-not-verified", scenario(register(password_verified=False)), NO,
     {"REG-3"}, _hint("数字の0")),
    ("REG-3-reject-password-changed-today-hint",
     scenario(register(password_verified=False),
              qualifications=(qual(password_changed_at="2026-11-24T08:00:00+09:00"),)),
     NO, {"REG-3"}, _hint("本日パスワード")),
    ("REG-3-reject-lapsed-qualification",
     scenario(register(), qualifications=(qual(qualified_until="2026-03-31"),)), NO,
     {"REG-3"}, None),
    # REG-4 password changed today
    ("REG-4-accept-password-changed-yesterday",
     scenario(register(), qualifications=(qual(password_changed_at="2026-11-23T23:59:00+09:00"),)),
     OK, set(), None),
    ("REG-4-reject-password-changed-today",
     scenario(register(), qualifications=(qual(password_changed_at="2026-11-24T00:10:00+09:00"),)),
     NO, {"REG-4"}, None),
    # REG-5 holder is the contractor (or, by policy, the legal representative)
    ("REG-5-accept-legal-representative-where-allowed",
     scenario(register(the_card=card(holder=REPRESENTATIVE))), OK, set(), None),
    ("REG-5-reject-legal-representative-where-not-allowed",
     scenario(register(entity="kawagoe-city", the_card=card(holder=REPRESENTATIVE)),
              qualifications=(qual("kawagoe-city"),)), NO, {"REG-5"}, None),
    ("REG-5-reject-holder-not-contractor", scenario(register(the_card=card(holder="山田 花子"))),
     NO, {"REG-5"}, None),
    # REG-6 validity, low-validity warning
    ("REG-6-accept-low-validity-with-warning",
     scenario(register(the_card=card(not_after="2026-12-04T00:00:00+09:00"))), OK, set(),
     lambda a: [w["rule_id"] for w in a["warnings"]] == ["REG-6"]
     and "紙入札" in a["warnings"][0]["next_step_ja"]),
    ("REG-6-reject-expired-card",
     scenario(register(the_card=card(not_after="2026-11-20T00:00:00+09:00"))), NO, {"REG-6"},
     None),
    # REG-7 input limits
    ("REG-7-accept-limits-at-maximum",
     scenario(register(dept=contact(contact_name="部" * 60, address="住" * 60,
                                    person_name="氏" * 20))), OK, set(), None),
    ("REG-7-reject-email-typed-differently",
     scenario(register(dept=contact("a@example.jp", "b@example.jp"))), NO, {"REG-7"}, None),
    ("REG-7-reject-address-too-long", scenario(register(dept=contact(address="住" * 61))), NO,
     {"REG-7"}, lambda a: a["violations"][0]["field"].endswith("address")),
    ("REG-7-reject-fullwidth-phone",
     scenario(register(dept=contact(phone="０４４-８１２-７３５８"))), NO, {"REG-7"}, None),
    ("REG-7-reject-bad-postal-code", scenario(register(dept=contact(postal_code="1230000"))), NO,
     {"REG-7"}, None),
    ("REG-7-reject-first-registration-without-main-contact", scenario(register(rep=None)), NO,
     {"REG-7"}, None),
    # REG-8 a re-issued card cannot change the main contact
    ("REG-8-accept-reissued-card-same-main-contact",
     scenario(register(the_card=card("122")), history=(R1,)), OK, set(), None),
    ("REG-8-reject-reissued-card-changes-main-contact",
     scenario(register(the_card=card("122"), rep=contact("other@example.jp")), history=(R1,)),
     NO, {"REG-8"}, None),
    # REG-9 reaches the other entities next day, or at once where chosen
    ("REG-9-accept-next-day-at-other-entity", scenario(register(), qualifications=BOTH), OK,
     set(), lambda a: [(s["target_entity"], s["due_at"], s["immediate"]) for s in _scheduled(a)]
     == [("kawagoe-city", "2026-11-25T02:00:00+09:00", False)]),
    ("REG-9-accept-at-once-chosen-entity",
     scenario(register(apply_now_to=("kawagoe-city",)), qualifications=BOTH), OK, set(),
     lambda a: _scheduled(a)[0]["immediate"] is True),
    ("REG-9-accept-registration-at-added-entity",
     scenario(register(entity="kawagoe-city"), history=(R1,), qualifications=BOTH), OK, set(),
     lambda a: not _registered(a)["first_registration"] and _scheduled(a) == []),
    ("REG-9-reject-at-once-where-not-qualified",
     scenario(register(apply_now_to=("kawagoe-city",))), NO, {"REG-9"}, None),
    # REG-10 企業ID and mail to the ICカード利用部署 (NTF-1)
    ("REG-10-accept-company-id-and-mail-to-card-department", scenario(register()), OK, set(),
     lambda a: len(_registered(a)["company_id"]) == 16
     and a["mails"][0]["to"] == ["ic-card@example.jp"]
     and a["mails"][0]["kind"] == "registration"
     and tuple(a["mails"][0]["values"]) == CARD_NOTICE_VALUE_KEYS),
    ("REG-10-reject-no-mail-when-rejected", scenario(register(password_verified=False)), NO,
     {"REG-3"}, _no_mail),
    # REG-11 re-issued cards: e-bid registers, e-contract asks for confirmation
    ("REG-11-accept-ebid-reissued-card-registers",
     scenario(register(the_card=card("122"), rep=None), history=(R1,)), OK, set(), None),
    ("REG-11-reject-econtract-new-card-held-for-confirmation",
     scenario(register(**MLIT_REG, the_card=card("122"), rep=None),
              history=(register(**MLIT_REG),), qualifications=MLIT), HOLD, {"REG-11"},
     lambda a: events_of(a, "registration.needs-confirmation")[0]["existing_user_ids"] == [USER]),
    ("REG-11-reject-econtract-same-company-new-user-id",
     scenario(register(**MLIT_REG, user_id=OTHER_USER, the_card=card("122")),
              history=(register(**MLIT_REG),),
              qualifications=(*MLIT, qual("mlit", user_id=OTHER_USER))), HOLD, {"REG-11"}, None),
    ("REG-11-accept-econtract-after-confirmation",
     scenario({"type": "registration.registration-confirmed", "payload": {
         "procuring_entity": "mlit", "system": "e-contract", "domain": "works", "user_id": USER,
         "confirmation_id": "PLACEHOLDER", "card": card("122")}},
              history=(register(**MLIT_REG), register(**MLIT_REG, the_card=card("122"), rep=None)),
              qualifications=MLIT), OK, set(), None),
    ("REG-11-reject-unknown-confirmation",
     scenario({"type": "registration.registration-confirmed", "payload": {
         "procuring_entity": "mlit", "system": "e-contract", "domain": "works", "user_id": USER,
         "confirmation_id": "00000000-0000-4000-8000-000000000000", "card": card("122")}},
              qualifications=MLIT), NO, {"REG-11"}, None),
    # WIN-1 e-bid service window; PIN-2 authenticated card
    ("WIN-1-reject-national-holiday", scenario(register(), acted_at="2026-11-23T10:00:00+09:00"),
     NO, {"WIN-1"}, None),
    ("WIN-1-reject-after-20", scenario(register(), acted_at="2026-11-24T20:00:00+09:00"), NO,
     {"WIN-1"}, None),
    ("WIN-1-reject-year-end", scenario(register(), acted_at="2026-12-30T10:00:00+09:00"), NO,
     {"WIN-1"}, None),
    ("WIN-1-accept-econtract-on-holiday",
     scenario(register(**MLIT_REG), qualifications=MLIT, acted_at="2026-11-23T22:00:00+09:00"),
     OK, set(), None),
    ("PIN-2-reject-card-not-authenticated", scenario(register(the_card=card(auth=None))), NO,
     {"PIN-2"}, None),
    ("PIN-2-reject-stale-authentication",
     scenario(register(the_card=card(auth="2026-11-24T08:00:00+09:00"))), NO, {"PIN-2"}, None),
    # CHG-1 contacts of a registered card, after authenticating with it
    ("CHG-1-accept-registered-card", scenario(change(), history=(R1,)), OK, set(),
     lambda a: events_of(a, "registration.contact-changed")[0]["card_department_contact"]["email"]
     == "new@example.jp"),
    ("CHG-1-reject-unregistered-card", scenario(change(the_card=card("999"))), NO, {"CHG-1"},
     None),
    ("CHG-1-reject-not-authenticated", scenario(change(the_card=card(auth=None)), history=(R1,)),
     NO, {"CHG-1"}, None),
    # CHG-2 each card and each domain separately
    ("CHG-2-accept-one-card-only",
     scenario(change(), history=(R1, register(the_card=card("122"), rep=None))), OK, set(),
     lambda a: [e["payload"]["card"]["serial"] for e in a["events"]] == ["121"]),
    ("CHG-2-reject-other-domain",
     scenario(change(domain="goods"), history=(R1,),
              qualifications=(qual(), qual(domain="goods"))), NO, {"CHG-2"}, None),
    # CHG-3 the person chooses whether it reaches the other entities
    ("CHG-3-accept-applies-to-other-entities",
     scenario(change(apply_to_other_entities=True), history=(R1_AT_BOTH,), qualifications=BOTH),
     OK, set(), lambda a: [s["target_entity"] for s in _scheduled(a)] == ["kawagoe-city"]),
    ("CHG-3-accept-this-entity-only", scenario(change(), history=(R1_AT_BOTH,),
                                               qualifications=BOTH), OK, set(),
     lambda a: _scheduled(a) == []),
    ("CHG-3-reject-at-once-where-not-registered",
     scenario(change(apply_now_to=("kawagoe-city",)), history=(R1,), qualifications=BOTH), NO,
     {"CHG-3"}, None),
    # CHG-4 the confirmation mail
    ("CHG-4-accept-mail-to-new-card-department-address", scenario(change(), history=(R1,)), OK,
     set(), lambda a: a["mails"][0]["to"] == ["new@example.jp"]
     and a["mails"][0]["kind"] == "change"),
    ("CHG-4-reject-email-typed-differently",
     scenario(change(dept=contact("new@example.jp", "neu@example.jp")), history=(R1,)), NO,
     {"CHG-4"}, _no_mail),
    # RNW-1 the old card must still be valid (and registered)
    ("RNW-1-accept-valid-old-card", scenario(renew(), history=(R1,)), OK, set(), None),
    ("RNW-1-reject-old-card-expired",
     scenario(renew(old=card(not_after="2026-11-20T00:00:00+09:00")),
              history=(register(the_card=card(not_after="2026-11-20T00:00:00+09:00",
                                              auth="2026-11-02T09:58:00+09:00"),
                                now="2026-11-02T10:00:00+09:00"),)), NO, {"RNW-1"}, None),
    ("RNW-1-reject-old-card-not-registered", scenario(renew()), NO, {"RNW-1"}, None),
    # RNW-2 unchanged user ID
    ("RNW-2-accept-same-user-id", scenario(renew(), history=(R1,)), OK, set(), None),
    ("RNW-2-reject-new-user-id",
     scenario(renew(user_id=OTHER_USER), history=(R1,),
              qualifications=(qual(), qual(user_id=OTHER_USER))), NO, {"RNW-2"}, None),
    ("RNW-2-reject-lapsed-qualification",
     scenario(renew(), history=(register(the_card=card(auth="2026-10-01T09:58:00+09:00"),
                                         now="2026-10-01T10:00:00+09:00"),),
              qualifications=(qual(qualified_until="2026-11-01"),)), NO,
     {"RNW-2"}, None),
    # RNW-3 unchanged company data
    ("RNW-3-accept-econtract-after-representative-change",
     scenario(renew(**MLIT_REG, new=card("122", holder=REPRESENTATIVE,
                                         auth="2026-11-24T09:59:00+09:00")),
              history=(register(**MLIT_REG),), qualifications=MLIT), OK, set(), None),
    ("RNW-3-reject-head-office-moved",
     scenario(renew(new=card("122", address="南西市1-1", auth="2026-11-24T09:59:00+09:00")),
              history=(R1,)), NO, {"RNW-3"}, None),
    ("RNW-3-reject-ebid-holder-changed",
     scenario(renew(new=card("122", holder=REPRESENTATIVE, auth="2026-11-24T09:59:00+09:00")),
              history=(R1,)), NO, {"RNW-3"}, None),
    # RNW-4 correct holder of the new card
    ("RNW-4-accept-contractor-holder", scenario(renew(), history=(R1,)), OK, set(), None),
    ("RNW-4-reject-wrong-holder",
     scenario(renew(**MLIT_REG, new=card("122", holder="山田 花子",
                                         auth="2026-11-24T09:59:00+09:00")),
              history=(register(**MLIT_REG),), qualifications=MLIT), NO, {"RNW-4"}, None),
    # RNW-5 same certification authority
    ("RNW-5-accept-same-ca-other-dn-spacing",
     scenario(renew(new=card("122", issuer="OU=CoreCA, O=eJapan2 Tech Center, C=JP",
                             auth="2026-11-24T09:59:00+09:00")), history=(R1,)), OK, set(),
     None),
    ("RNW-5-reject-other-ca",
     scenario(renew(new=card("122", issuer="OU=OtherCA,O=Other,C=JP",
                             auth="2026-11-24T09:59:00+09:00")), history=(R1,)), NO, {"RNW-5"},
     None),
    # RNW-6 both cards authenticated, old first
    ("RNW-6-accept-old-then-new", scenario(renew(), history=(R1,)), OK, set(), None),
    ("RNW-6-reject-new-card-first",
     scenario(renew(new=card("122", auth="2026-11-24T09:50:00+09:00")), history=(R1,)), NO,
     {"RNW-6"}, None),
    ("RNW-6-reject-new-card-not-authenticated",
     scenario(renew(new=card("122", auth=None)), history=(R1,)), NO, {"RNW-6"}, None),
    # RNW-7 contacts inherited, old card unusable
    ("RNW-7-accept-old-card-revoked-contacts-inherited", scenario(renew(), history=(R1,)), OK,
     set(), lambda a: events_of(a, "registration.card-revoked")[0]["card"]["serial"] == "121"
     and a["mails"][0]["to"] == ["ic-card@example.jp"]),
    ("RNW-7-reject-old-card-already-renewed",
     scenario(renew(new=card("123", auth="2026-11-24T09:59:00+09:00")),
              history=(R1, RENEWED)), NO, {"RNW-7"}, None),
    ("RNW-7-reject-change-with-renewed-away-card",
     scenario(change(), history=(R1, RENEWED)), NO, {"RNW-7"}, None),
    # RNW-8 the person chooses whether it reaches the other entities
    ("RNW-8-accept-applies-to-other-entities",
     scenario(renew(apply_to_other_entities=True), history=(R1_AT_BOTH,), qualifications=BOTH),
     OK, set(), lambda a: [s["target_entity"] for s in _scheduled(a)] == ["kawagoe-city"]),
    ("RNW-8-reject-at-once-where-old-card-not-registered",
     scenario(renew(apply_now_to=("kawagoe-city",)), history=(R1,), qualifications=BOTH), NO,
     {"RNW-8"}, None),
    # RNW-9 the confirmation mail
    ("RNW-9-accept-renewal-mail", scenario(renew(), history=(R1,)), OK, set(),
     lambda a: a["mails"][0]["kind"] == "renewal"
     and a["mails"][0]["values"]["card_serial"] == "122"),
    ("RNW-9-reject-no-mail-when-rejected",
     scenario(renew(new=card("122", auth=None)), history=(R1,)), NO, {"RNW-6"}, _no_mail),
]


def _fill_confirmation(data: dict[str, Any]) -> dict[str, Any]:
    """The confirmation id is deterministic: take it from the held registration."""
    if data["command"]["payload"].get("confirmation_id") != "PLACEHOLDER":
        return data
    held = evaluate({**data, "history": data["history"][:-1], "command": data["history"][-1]})
    cid = events_of(held, "registration.needs-confirmation")[0]["confirmation_id"]
    data["command"]["payload"]["confirmation_id"] = cid
    return data


@pytest.mark.parametrize(("data", "decision", "rule_ids", "check"),
                         [pytest.param(c[1], c[2], c[3], c[4], id=c[0]) for c in CASES])
def test_rule(data: dict[str, Any], decision: str, rule_ids: set[str],
              check: Callable[[dict[str, Any]], bool] | None) -> None:
    answer = evaluate(_fill_confirmation(data))
    assert answer["decision"] == decision, answer["violations"]
    assert set(answer["rule_ids"]) == rule_ids
    for v in answer["violations"]:
        assert v["message_ja"]
        assert v["message_en"]
    if decision != OK:
        assert answer["mails"] == []
        assert all(v["next_step_ja"] and v["next_step_en"] for v in answer["violations"])
    if check is not None:
        assert check(answer), answer


def test_every_reg_chg_rnw_rule_has_accepting_and_rejecting_case() -> None:
    ids = [c[0] for c in CASES] + list(EXTRA_CASE_IDS)
    rules = [f"REG-{i}" for i in range(1, 12)] + [f"CHG-{i}" for i in range(1, 5)] + [
        f"RNW-{i}" for i in range(1, 10)]
    for rule in rules:
        assert any(i.startswith(f"{rule}-accept") for i in ids), rule
        assert any(i.startswith(f"{rule}-reject") for i in ids), rule


EXTRA_CASE_IDS = ("REG-2-reject-expired-spare-card-unusable",)
"""Cases tested outside the table (below)."""


def command_of(step: dict[str, Any]) -> Payload:
    """A scenario step as the command payload it describes."""
    cls = REGISTRY.lookup(step["type"], 1)
    return cls.model_validate_json(json.dumps(step["payload"]))


def qualification_update(row: dict[str, Any]) -> QualificationUpdated:
    fields = {k: v for k, v in row.items() if k not in ("entity", "domain")}
    return QualificationUpdated.model_validate_json(json.dumps(
        {"procuring_entity": row["entity"], "domain": row["domain"], "rows": [fields]}))


def test_REG_2_reject_expired_spare_card_unusable() -> None:
    """REG-2: each card stays usable while valid; an expired spare no longer is."""
    book, world = default_policy_book(), World()
    now = datetime.fromisoformat(NOW)
    apply(world, qualification_update(qual()), now)
    spare = card("122", not_after="2026-12-31T00:00:00+09:00")
    for step in (register(), register(the_card=spare, rep=None)):
        decision = decide(world, command_of(step), book, now)
        assert decision.outcome is Outcome.ACCEPTED, decision.violations
        apply_decision(world, decision, now)
    later = datetime.fromisoformat("2027-01-05T10:00:00+09:00")
    assert usable_card(world, (ISSUER, "121"), later) is not None
    assert usable_card(world, (ISSUER, "122"), now) is not None
    assert usable_card(world, (ISSUER, "122"), later) is None
