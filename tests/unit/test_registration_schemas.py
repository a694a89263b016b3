"""Registration and qualification payloads: strict validation, REG-7 format limits,
法人番号 check digits (python-stdnum), and schema errors as REG-7 violations."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from pipelines.registration.common import company_id_for
from schemas.envelope import new_envelope
from schemas.qualification import QualificationRecord, valid_corporate_number
from schemas.registration import (
    CardFacts,
    CardRegistrationRequested,
    ContactChangeRequested,
    ContactInput,
    PropagationScheduled,
    input_violations,
)
from schemas.wire import decode, encode
from tests.unit.test_registration_rules import card, contact, qual, register


def _contact(**over: Any) -> ContactInput:
    return ContactInput.model_validate_json(json.dumps(contact(**over)))


@pytest.mark.parametrize(("field", "value"), [
    ("postal_code", "123-45678"),
    ("postal_code", "１２３-４５６７"),
    ("phone", "03-1234-5678-9"),
    ("phone", "3-1234-5678"),
    ("email", "北東@example.jp"),
    ("email", "a" * 95 + "@ex.jp"),
    ("contact_name", "x" * 61),
    ("person_name", "x" * 21),
    ("address", "x" * 61),
])
def test_REG_7_format_limits(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        _contact(**{field: value})
    violations = input_violations(info.value)
    assert {v.rule_id for v in violations} == {"REG-7"}
    assert violations[0].field == field
    assert "NNN-NNNN" in violations[0].next_step_ja


def test_REG_7_limits_accept_the_maximum() -> None:
    c = _contact(contact_name="x" * 60, person_name="x" * 20, address="x" * 60,
                 phone="0120-123-456")
    assert c.to_contact().email == "ic-card@example.jp"


def test_lookup_fields_map_to_REG_3() -> None:
    data = register(trade_name="x" * 41)["payload"]
    with pytest.raises(ValidationError) as info:
        CardRegistrationRequested.model_validate_json(json.dumps(data))
    assert [v.rule_id for v in input_violations(info.value)] == ["REG-3"]


def test_card_validity_must_be_in_order() -> None:
    with pytest.raises(ValidationError, match="not_after"):
        CardFacts.model_validate_json(json.dumps(card(not_before="2030-01-01T00:00:00+09:00",
                                                      not_after="2029-01-01T00:00:00+09:00")))


def test_card_times_must_carry_a_zone() -> None:
    with pytest.raises(ValidationError):
        CardFacts.model_validate_json(json.dumps(card(not_after="2030-01-01T00:00:00")))


def test_commands_never_carry_a_pin_or_password() -> None:
    for cls in (CardRegistrationRequested, ContactChangeRequested):
        assert not {"pin", "password"} & set(cls.model_fields)
    data = register()["payload"] | {"password": "secret12"}
    with pytest.raises(ValidationError, match="extra"):
        CardRegistrationRequested.model_validate_json(json.dumps(data))


def test_change_needs_something_to_change() -> None:
    with pytest.raises(ValidationError, match="nothing to change"):
        ContactChangeRequested.model_validate_json(json.dumps({
            "procuring_entity": "saitama-pref", "system": "e-bid", "domain": "works",
            "user_id": "1234567890", "card": card()}))


def test_corporate_number_check_digit() -> None:
    assert valid_corporate_number("5835678256246")
    assert not valid_corporate_number("5835678256247")
    row = {k: v for k, v in qual().items() if k not in ("entity", "domain")}
    QualificationRecord.model_validate_json(json.dumps(row | {"invoice_number": "T5835678256246"}))
    for bad in ({"corporate_number": "1835678256246"}, {"invoice_number": "5835678256246"}):
        with pytest.raises(ValidationError):
            QualificationRecord.model_validate_json(json.dumps(row | bad))


def test_company_id_is_16_digits_deterministic_and_luhn_checked() -> None:
    a = company_id_for("saitama-joint", "1234567890")
    assert a == company_id_for("saitama-joint", "1234567890")
    assert a != company_id_for("saitama-joint", "1234567891")
    assert len(a) == 16
    assert a.isdigit()
    total = sum(int(d) if i % 2 == 0 else (2 * int(d) - 9 if int(d) > 4 else 2 * int(d))
                for i, d in enumerate(reversed(a)))
    assert total % 10 == 0


def test_propagation_event_round_trips_on_the_wire() -> None:
    from pipelines.registration.scenario import evaluate
    from tests.unit.test_registration_rules import BOTH, scenario

    answer = evaluate(scenario(register(), qualifications=BOTH))
    payload = next(e["payload"] for e in answer["events"]
                   if e["type"] == "registration.propagation-scheduled")
    event = PropagationScheduled.model_validate_json(json.dumps(payload))
    envelope = new_envelope(event, correlation_id="1234567890", procuring_entity="saitama-pref",
                            producer="test")
    _, value, headers = encode(envelope)
    assert decode(value, headers).payload == event
