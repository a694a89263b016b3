"""schemas.fast: each shortcut gives what its plain call gives.

Ids: version-4 UUIDs as uuid.uuid4() makes them, from a pooled read of os.urandom (a forked
child never repeats its parent's ids), and uuid5 as uuid.uuid5. Messages built without
validation equal the validated ones (the rules' own objects are compared in
test_registration_speedups.py; the serialization shortcuts in test_serialized.py)."""

from __future__ import annotations

import os
import uuid

import pytest

from schemas import fast
from schemas.envelope import new_envelope
from schemas.mail import MailKind, MailRequested
from schemas.registration import (
    CardRef,
    Domain,
    PropagationKind,
    RegistrationRejected,
    SystemKind,
)
from schemas.rejection import RuleViolation
from tests.support.registration import card, register


def test_ids_are_version_4_and_unique() -> None:
    ids = [fast.random_id() for _ in range(20_000)]  # many pool refills
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    # every bit other than version and variant varies
    fixed = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
    ored = 0
    anded = fixed
    for i in ids:
        ored |= i.int & fixed
        anded &= i.int
    assert ored == fixed
    assert anded & fixed == 0


def test_built_as_uuid_builds_a_version_4_id_from_the_same_bytes() -> None:
    for sixteen in (b"\x00" * 16, b"\xff" * 16, bytes(range(16)), *(os.urandom(16)
                                                                   for _ in range(1000))):
        made, reference = fast.uuid4_from(sixteen), uuid.UUID(bytes=sixteen, version=4)
        assert made == reference
        assert (made.int, made.is_safe, str(made)) == (reference.int, reference.is_safe,
                                                        str(reference))
        assert hash(made) == hash(reference)


def test_a_forked_child_does_not_repeat_the_parent() -> None:
    fast.random_id()  # the pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(fast.random_id().bytes for _ in range(8)))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {uuid.UUID(bytes=data[i:i + 16]) for i in range(0, len(data), 16)}
    parent = {fast.random_id() for _ in range(8)}
    assert len(child) == 8
    assert not child & parent


def test_envelopes_take_their_ids_from_it() -> None:
    payload = register("1000000001", card("880000001"), "ic@example.jp")
    ids = {new_envelope(payload, correlation_id="c", procuring_entity="saitama-pref",
                        producer="test").message_id for _ in range(300)}
    assert len(ids) == 300
    assert {i.version for i in ids} == {4}


@pytest.mark.parametrize("name", ["", "propagate\x1fregistration\x1fsaitama-pref", "北東組株式会社",
                                  "x" * 1000])
@pytest.mark.parametrize("namespace", [uuid.UUID("6f1c0d3e-5b7a-4f0e-9b7e-2a1f3c4d5e6f"),
                                       uuid.NAMESPACE_DNS])
def test_uuid5_is_uuid_uuid5(namespace: uuid.UUID, name: str) -> None:
    for _ in range(2):  # the second call starts from the kept SHA-1 state
        made, expected = fast.uuid5(namespace, name), uuid.uuid5(namespace, name)
        assert made == expected
        assert (made.version, made.variant, str(made), hash(made), made.is_safe) == (
            5, uuid.RFC_4122, str(expected), hash(expected), expected.is_safe)


@pytest.mark.parametrize("parts", [
    ("saitama-pref", Domain.WORKS, "OU=CoreCA,O=eJapan2 Tech Center,C=JP", "100"),
    ("works", Domain.WORKS, "works"),  # a str equal to a StrEnum member is not the member
    ("it's", 'a "quote"', SystemKind.E_BID, PropagationKind.CHANGE, ("nested", Domain.WORKS)),
    (MailKind.REGISTRATION,),
    ("one",),
    (),
])
def test_text_of_is_str_of_the_tuple(parts: tuple[object, ...]) -> None:
    for _ in range(2):  # the second time from the kept reprs
        assert fast.text_of(parts) == str(parts)


def test_members_are_the_enum_members_in_order() -> None:
    for kind in (Domain, SystemKind, PropagationKind, MailKind):
        assert fast.members(kind) == tuple(kind)
        assert fast.members(kind) is fast.members(kind)


def _violation() -> RuleViolation:
    return RuleViolation(rule_id="WIN-1", message_ja="受付時間外です", message_en="closed",
                         next_step_ja="受付時間内に", next_step_en="within the hours")


def test_build_equals_validation_and_fills_defaults() -> None:
    ref = fast.build(CardRef, issuer="OU=CoreCA,O=eJapan2 Tech Center,C=JP", serial="1")
    assert ref == CardRef(issuer="OU=CoreCA,O=eJapan2 Tech Center,C=JP", serial="1")
    values = {"command_type": "x", "procuring_entity": "saitama-pref",
              "violations": (_violation(),)}
    built, validated = fast.build(RegistrationRejected, **values), RegistrationRejected(**values)
    assert built.domain is None
    assert built.card is None
    assert built.model_fields_set == {"command_type", "procuring_entity", "violations"}
    assert built.__getstate__() == validated.__getstate__()
    assert built.model_dump_json() == validated.model_dump_json()


def test_build_refuses_missing_and_unknown_fields() -> None:
    with pytest.raises(TypeError, match="CardRef"):
        fast.build(CardRef, issuer="x")
    with pytest.raises(TypeError, match="CardRef"):
        fast.build(CardRef, issuer="x", serial="1", holder_name="x")


def test_a_default_factory_field_must_be_given() -> None:
    """No mutable default is shared between objects built without validation."""
    with pytest.raises(TypeError, match="values"):
        fast.build(MailRequested, mail_id=uuid.uuid4(), kind="generic", to=("a@example.jp",))
