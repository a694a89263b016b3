"""schemas.ids.random_uuid: version-4 UUIDs as uuid.uuid4() makes them, from a pooled read
of os.urandom; a forked child never repeats its parent's ids."""

from __future__ import annotations

import os
import uuid

from schemas.envelope import new_envelope
from schemas.ids import random_uuid, v4_from
from tests.support.registration import card, register


def test_ids_are_version_4_and_unique() -> None:
    ids = [random_uuid() for _ in range(20_000)]  # many pool refills
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
        made, reference = v4_from(sixteen), uuid.UUID(bytes=sixteen, version=4)
        assert made == reference
        assert (made.int, made.is_safe, str(made)) == (reference.int, reference.is_safe,
                                                        str(reference))
        assert hash(made) == hash(reference)


def test_a_forked_child_does_not_repeat_the_parent() -> None:
    random_uuid()  # the pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(random_uuid().bytes for _ in range(8)))
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    child = {uuid.UUID(bytes=data[i:i + 16]) for i in range(0, len(data), 16)}
    parent = {random_uuid() for _ in range(8)}
    assert len(child) == 8
    assert not child & parent


def test_envelopes_take_their_ids_from_it() -> None:
    payload = register("1000000001", card("880000001"), "ic@example.jp")
    ids = {new_envelope(payload, correlation_id="c", procuring_entity="saitama-pref",
                        producer="test").message_id for _ in range(300)}
    assert len(ids) == 300
    assert {i.version for i in ids} == {4}
