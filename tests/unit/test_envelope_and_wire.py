"""The canonical envelope and its wire form: strict, versioned, readable errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas.envelope import JST, caused_envelope, new_envelope
from schemas.mail import MailKind, MailRequested
from schemas.registry import REGISTRY, Payload, UnknownMessageType, message
from schemas.topics import ALL_TOPICS, DLQ_SUFFIX, by_name
from schemas.wire import MAX_MESSAGE_BYTES, PoisonReason, WireError, decode, encode, header


def mail(**kw: object) -> MailRequested:
    return MailRequested(mail_id=uuid.uuid4(), kind=MailKind.REGISTRATION,
                         to=("ic-card@example.jp",), **kw)  # type: ignore[arg-type]


def test_round_trip_keeps_everything_and_stores_utc() -> None:
    at = datetime(2026, 11, 24, 9, 30, tzinfo=JST)
    env = new_envelope(mail(values={"company_name": "北東組株式会社"}), correlation_id="R8-1",
                       procuring_entity="saitama-pref", producer="test", occurred_at=at)
    key, value, headers = encode(env)
    assert key == b"R8-1"
    assert b'"occurred_at":"2026-11-24T00:30:00Z"' in value
    assert header(headers, "x-message-type") == "mail.requested"
    assert header(headers, "x-message-id") == str(env.message_id)
    assert header(headers, "x-correlation-id") == "R8-1"
    back = decode(value, headers)
    assert back == env
    assert back.occurred_at.tzinfo == UTC
    assert back.occurred_at_jst.hour == 9


def test_naive_times_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        new_envelope(mail(), correlation_id="c", procuring_entity="saitama-pref",
                     producer="t", occurred_at=datetime(2026, 1, 1))
    _, value, _ = encode(new_envelope(mail(), correlation_id="c",
                                      procuring_entity="saitama-pref", producer="t"))
    body = json.loads(value)
    body["payload"]["surprise"] = 1
    with pytest.raises(WireError) as err:
        decode(json.dumps(body).encode())
    assert err.value.reason is PoisonReason.INVALID
    assert "surprise" in err.value.detail


def test_strict_types_no_silent_coercion() -> None:
    _, value, _headers = encode(new_envelope(mail(), correlation_id="c",
                                            procuring_entity="saitama-pref", producer="t"))
    body = json.loads(value)
    body["schema_version"] = "1"  # a string where an integer belongs
    with pytest.raises(WireError) as err:
        decode(json.dumps(body).encode(), [])
    assert err.value.reason is PoisonReason.NOT_ENVELOPE


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe", PoisonReason.NOT_JSON),
    (b"not json", PoisonReason.NOT_JSON),
    (b"[1, 2]", PoisonReason.NOT_ENVELOPE),
    (b'{"type": "mail.requested"}', PoisonReason.NOT_ENVELOPE),
    (b'{"type": "mail.requested", "schema_version": 99}', PoisonReason.UNKNOWN_TYPE),
    (b'{"type": "mail.requested", "schema_version": 1}', PoisonReason.INVALID),
    (b"x" * (MAX_MESSAGE_BYTES + 1), PoisonReason.OVERSIZE),
    (None, PoisonReason.NOT_JSON),
])
def test_poison_is_named_with_text_for_people(raw: bytes | None, reason: PoisonReason) -> None:
    with pytest.raises(WireError) as err:
        decode(raw)
    assert err.value.reason is reason
    assert err.value.text_ja
    assert err.value.text_en


def test_headers_that_contradict_the_body_are_refused() -> None:
    _, value, headers = encode(new_envelope(mail(), correlation_id="c",
                                            procuring_entity="saitama-pref", producer="t"))
    lying = [(k, b"2" if k == "x-schema-version" else v) for k, v in headers]
    with pytest.raises(WireError) as err:
        decode(value, lying)
    assert err.value.reason is PoisonReason.UNKNOWN_TYPE


def test_a_new_version_lives_beside_the_old_one() -> None:
    @message("test.versioned", 1)
    class V1(Payload):
        amount: int

    @message("test.versioned", 2)
    class V2(Payload):
        amount_jpy: int
        currency: str = "JPY"

    assert REGISTRY.lookup("test.versioned", 1) is V1
    assert REGISTRY.lookup("test.versioned", 2) is V2
    for payload in (V1(amount=1), V2(amount_jpy=1)):
        env = new_envelope(payload, correlation_id="c", procuring_entity="saitama-pref",
                           producer="t")
        _, value, headers = encode(env)
        assert type(decode(value, headers).payload) is type(payload)
    with pytest.raises(UnknownMessageType):
        REGISTRY.lookup("test.versioned", 3)
    with pytest.raises(ValueError, match="declared twice"):
        message("test.versioned", 1)(type("Other", (Payload,), {"__annotations__": {}}))


def test_every_topic_has_a_dead_letter_twin_and_a_key() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    for topic in ALL_TOPICS:
        assert topic.dlq == topic.name + DLQ_SUFFIX
        assert by_name(topic.dlq) is topic
        assert topic.name.startswith("proc.")
        assert topic.partitions >= 1
    with pytest.raises(KeyError, match=r"schemas/topics\.py"):
        by_name("proc.nowhere")


def test_occurred_at_keeps_the_instant_whatever_its_zone() -> None:
    plus5 = timezone(timedelta(hours=5))
    env = new_envelope(mail(), correlation_id="c", procuring_entity="saitama-pref",
                       producer="t", occurred_at=datetime(2026, 1, 1, 5, tzinfo=plus5))
    assert env.occurred_at == datetime(2026, 1, 1, 0, tzinfo=UTC)


def test_a_caused_envelope_equals_the_validated_one() -> None:
    cause = new_envelope(mail(), correlation_id="R8-7", procuring_entity="saitama-pref",
                         producer="gateway")
    at = datetime(2026, 12, 5, 19, 0, 1, tzinfo=JST)
    for kw in ({}, {"correlation_id": "R8-8", "entity": "kawagoe-city"}):
        made = caused_envelope(mail(), cause, producer="hub", occurred_at=at, **kw)
        validated = new_envelope(made.payload, correlation_id=kw.get("correlation_id", "R8-7"),
                                 procuring_entity=kw.get("entity", "saitama-pref"),
                                 producer="hub", causation_id=cause.message_id,
                                 occurred_at=at, message_id=made.message_id)
        assert made == validated
        assert made.model_fields_set == validated.model_fields_set
        assert made.occurred_at.tzinfo == UTC
        assert made.causation_id == cause.message_id
        assert encode(made) == encode(validated)
        assert decode(*encode(made)[1:]) == made
    assert made.procuring_entity == "kawagoe-city"
    assert made.correlation_id == "R8-8"


@pytest.mark.parametrize(("kw", "field"), [
    ({"entity": "Saitama Pref"}, "procuring_entity"),
    ({"entity": "saitama-pref\n"}, "procuring_entity"),
    ({"correlation_id": "x" * 101}, "correlation_id"),
    ({"producer": ""}, "producer"),
    ({"occurred_at": datetime(2026, 12, 5, 10, 0)}, "occurred_at"),
])
def test_what_a_handler_passes_to_a_caused_envelope_is_validated(kw: dict[str, object],
                                                                  field: str) -> None:
    cause = new_envelope(mail(), correlation_id="R8-7", procuring_entity="saitama-pref",
                         producer="gateway")
    args: dict[str, object] = {"producer": "hub", "occurred_at": datetime.now(UTC), **kw}
    with pytest.raises(ValidationError, match=field):
        caused_envelope(mail(), cause, **args)  # type: ignore[arg-type]
