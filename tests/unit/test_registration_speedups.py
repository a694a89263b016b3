"""The registration rules' speedups change nothing a user can see.

Each speedup of the pure decision path is pinned here against the plain way: the rules'
ids equal ``uuid.uuid5`` of their parts, every object the rules build with
``schemas.fast.build`` equals the validated one (fields, fields set, JSON), cached policy
answers equal fresh ones, mail ids stay derived from ``str(seed)``.
"""

from __future__ import annotations

import copy
import re
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import holidays
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from pipelines.registration import change, register, renew, texts
from pipelines.registration.common import deterministic_id, notice_mail
from pipelines.registration.policy import (
    _ENTITY_CODE,
    EntityPolicy,
    PolicyError,
    default_policy_book,
    is_service_time,
    policy_book_from,
)
from pipelines.registration.scenario import evaluate
from schemas import fast
from schemas.envelope import JST, EntityCode
from schemas.mail import MailKind
from schemas.registration import CardRef, Contact, Domain, PropagationKind, SystemKind
from schemas.text import is_halfwidth
from tests.unit.test_registration_rules import CASES, _fill_confirmation

_NAMESPACE = uuid.UUID("6f1c0d3e-5b7a-4f0e-9b7e-2a1f3c4d5e6f")


@pytest.mark.parametrize("parts", [
    ("propagate", PropagationKind.REGISTRATION, "saitama-pref", "kawagoe-city", Domain.WORKS,
     "OU=CoreCA,O=eJapan2 Tech Center,C=JP", "100"),
    ("mail", "registration", str(("saitama-pref", Domain.GOODS, "issuer", "1"))),
    ("confirm", "北東組株式会社"),
    (),
])
def test_deterministic_id_is_uuid5_of_the_joined_parts(parts: tuple[str, ...]) -> None:
    """StrEnum parts count as their values (as str() of them gives)."""
    expected = uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts))
    made = deterministic_id(*parts)
    assert made == expected
    assert (made.version, made.variant, str(made), hash(made)) == (
        5, uuid.RFC_4122, str(expected), hash(expected))
    assert made.is_safe is uuid.SafeUUID.unknown


ENTITY_CODE_PATTERN = str(TypeAdapter(EntityCode).json_schema()["pattern"])


@pytest.fixture
def trusted_checked(monkeypatch: pytest.MonkeyPatch) -> list[BaseModel]:
    """Every object the rules build with ``fast.build`` is also built validated and
    compared."""
    built: list[BaseModel] = []
    build = fast.build

    def checked(cls: type[BaseModel], /, **values: Any) -> BaseModel:
        made = build(cls, **values)
        validated = cls(**values)
        # __getstate__: fields, fields set, extras and private attributes, all of them.
        assert made.__getstate__() == validated.__getstate__()
        assert list(made.__dict__) == list(validated.__dict__)
        assert made.model_dump_json() == validated.model_dump_json()
        assert type(made).model_validate_json(made.model_dump_json()) == made
        built.append(made)
        return made

    monkeypatch.setattr(fast, "build", checked)
    return built


@pytest.mark.parametrize("data", [pytest.param(c[1], id=c[0]) for c in CASES])
def test_objects_built_without_validation_equal_validated_ones(
        data: dict[str, Any], trusted_checked: list[BaseModel]) -> None:
    """Every rule's accepting and rejecting case (test_registration_rules.CASES)."""
    answer = evaluate(_fill_confirmation(copy.deepcopy(data)))
    if answer["events"]:
        assert trusted_checked, "the rules built their events some other way"
    assert {type(m).__name__ for m in trusted_checked} <= {
        "CardRef", "Contact", "CardRegistered", "ContactChanged", "CardRenewed", "CardRevoked",
        "PropagationScheduled", "RegistrationRejected", "RegistrationNeedsConfirmation",
        "MailRequested", "RuleViolation"}


def test_the_checked_cases_cover_every_event_and_the_mail(
        trusted_checked: list[BaseModel]) -> None:
    for _, data, *_ in CASES:
        evaluate(_fill_confirmation(copy.deepcopy(data)))
    assert {type(m).__name__ for m in trusted_checked} == {
        "CardRef", "Contact", "CardRegistered", "ContactChanged", "CardRenewed", "CardRevoked",
        "PropagationScheduled", "RegistrationRejected", "RegistrationNeedsConfirmation",
        "MailRequested", "RuleViolation"}


def test_policy_holds_entity_codes_and_networks_to_the_event_constraints() -> None:
    """Events carry policy values unvalidated, so the policy file is checked instead."""
    good = (Path(__file__).resolve().parents[2] / "pipelines" / "registration"
            / "default_policy.toml").read_text(encoding="utf-8")
    assert _ENTITY_CODE.pattern in ENTITY_CODE_PATTERN
    with pytest.raises(PolicyError, match=r"#1 \(Saitama Pref\): code 'Saitama Pref'"):
        policy_book_from(tomllib.loads(good.replace('"saitama-pref"', '"Saitama Pref"')))
    with pytest.raises(PolicyError, match=r"network 'x{65}': expected 1-64"):
        policy_book_from(tomllib.loads(good.replace('"saitama-joint"', '"' + "x" * 65 + '"')))
    assert default_policy_book().get("saitama-pref", SystemKind.E_BID) is not None


@cache
def _jp_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("JP", years=year)


def _open_reference(policy: EntityPolicy, at: datetime) -> bool:
    """WIN-1 computed afresh, as before the per-day cache."""
    local = at.astimezone(JST)
    day = local.date()
    if ((policy.weekdays_only and day.weekday() >= 5)
            or (policy.year_end_closure and ((day.month, day.day) >= (12, 29)
                                             or (day.month, day.day) <= (1, 5)))
            or (policy.closed_on_holidays
                and day in _jp_holidays(day.year))):
        return False
    if policy.service_hours is None:
        return True
    return policy.service_hours[0] <= local.time() < policy.service_hours[1]


def test_per_day_policy_answers_equal_fresh_ones() -> None:
    """WIN-1 windows and the next nightly batch (REG-9), cached per JST day, over a
    year end, a holiday week and a day boundary in UTC; and after the cache is cleared."""
    book = default_policy_book()
    start = datetime(2026, 12, 20, 14, 59, tzinfo=UTC)  # 23:59 JST
    for (code, system), policy in book.entries.items():
        for hours in range(0, 24 * 30, 7):
            at = start + timedelta(hours=hours, minutes=hours % 60)
            assert is_service_time(policy, at) is _open_reference(policy, at), (code, system, at)
            local_day = at.astimezone(JST).date()
            assert policy.next_batch(at) == datetime.combine(
                local_day + timedelta(days=1), policy.batch_time, tzinfo=JST)
    saitama = book.get("saitama-pref", SystemKind.E_BID)
    assert saitama is not None
    for days in range(4200):  # past the bound: the cache starts over, answers stay right
        at = start + timedelta(days=days)
        assert is_service_time(saitama, at) is _open_reference(saitama, at)
    assert saitama.auth_max_age == timedelta(minutes=saitama.auth_max_age_minutes)
    assert saitama.low_validity == timedelta(days=saitama.low_validity_days)


@pytest.mark.parametrize("seed", [
    ("saitama-pref", Domain.WORKS, "OU=CoreCA,O=eJapan2 Tech Center,C=JP", "100"),
    ("saitama-pref", Domain.GOODS, "issuer", "1", "2026-11-24T10:00:00+09:00"),
    ("it's", 'a "quote"', SystemKind.E_BID, PropagationKind.CHANGE, ("nested", Domain.WORKS)),
    ("one",),
    (),
])
def test_mail_ids_are_derived_from_str_of_the_seed(seed: tuple[object, ...]) -> None:
    """Mail ids are derived from str(seed) as before: a replay does not mail twice."""
    contact = Contact(contact_name="営業部", postal_code="123-0000", address="北東市中央町",
                      person_name="日立 次郎", phone="044-812-7358", email="ic@example.jp")
    mail = notice_mail(MailKind.REGISTRATION, policy=default_policy_book().entries[
        ("saitama-pref", SystemKind.E_BID)], company_name="x", company_id="9" * 16,
        user_id="1234567890", contact=contact, card=CardRef(issuer="x", serial="1"), seed=seed)
    assert mail.mail_id == uuid.uuid5(_NAMESPACE, f"mail\x1fregistration\x1f{seed}")


def test_halfwidth_check_is_printable_ascii_exactly() -> None:
    for code in [*range(0x00, 0x100), 0x3000, 0xFF10, 0xFF21, 0x1F600]:
        ch = chr(code)
        assert is_halfwidth(ch) is (" " <= ch <= "~"), hex(code)
        assert is_halfwidth(f"ab{ch}9") is (" " <= ch <= "~"), hex(code)
    assert is_halfwidth("")


def test_catalog_entries_are_checked_before_texts_skip_validation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(texts.CATALOG, "closed", ("XYZ-1", "x", "x", "", ""))
    with pytest.raises(ValueError, match="'XYZ-1' is not a rule ID"):
        texts.violation("closed")
    monkeypatch.setitem(texts.CATALOG, "closed", ("WIN-1", "{entity}", "x", "", ""))
    with pytest.raises(ValueError, match="no text of its own"):
        texts.violation("closed", entity="x")
    monkeypatch.setitem(texts.CATALOG, "closed", ("WIN-1", "{entity}です", "x{{y}}", "", ""))
    made = texts.violation("closed", entity="川越市")
    assert (made.message_ja, made.message_en) == ("川越市です", "x{y}")


def test_a_rule_id_given_by_the_caller_is_still_validated() -> None:
    assert texts.violation("propagate-target", rule="CHG-3", target="x").rule_id == "CHG-3"
    with pytest.raises(ValidationError, match="rule_id"):
        texts.violation("propagate-target", rule="CHG-33x", target="x")


@pytest.mark.parametrize("module", [register, change, renew], ids=lambda m: m.__name__)
def test_every_check_is_a_function_named_after_its_rule(module: Any) -> None:
    """decide_registration, decide_change and decide_renewal are lists of named checks:
    gates (the first failure answers alone), then checks (all failures answer together)."""
    checks = [*module.GATES, *module.CHECKS]
    assert len(set(checks)) == len(checks)
    for check in checks:
        assert re.fullmatch(r"(reg|chg|rnw|win|pin)_[0-9]{1,2}_[a-z0-9_]+", check.__name__)
        assert getattr(module, check.__name__) is check
