"""Message ids of commands that arrive from outside are keyed, not derived from public
values (DAT-5): the same event still gets the same id (the idempotent consumer's dedupe),
but without HUB_ID_KEY nobody can compute it and publish it first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.application import message_id_for
from connectors.cloudsign import CloudSignConnector
from schemas.cloudsign import ContractDeclined
from schemas.ids import id_key_is_demo, keyed_uuid, use_id_key
from schemas.rejection import RuleViolation

# What the ids were before: uuid5 of a namespace constant published in the source.
OLD_APPLICATION_NS = uuid.UUID("6f1c3f0e-2b6a-5d1e-9a0c-5e7d1b2a4c10")
OLD_CLOUDSIGN_NS = uuid.UUID("0c6b2f7e-9d3a-5b8e-a1f4-3e2d7c9b6a51")


@pytest.fixture
def city_key() -> Iterator[str]:
    key = "k" * 40
    use_id_key(key)
    yield key
    use_id_key(None)


def _declined(document_id: str) -> ContractDeclined:
    return ContractDeclined(
        document_id=document_id, case_id="R8-001", title="工事請負契約書",
        declined_at=datetime.now(UTC),
        violations=(RuleViolation(rule_id="CON-2", message_ja="却下", message_en="declined",
                                  next_step_ja="確認", next_step_en="check"),))


def test_the_same_application_gets_the_same_id_and_nobody_can_compute_it(city_key: str) -> None:
    first = message_id_for("A000001")
    assert message_id_for("A000001") == first  # webhook and poll: one delivery
    assert message_id_for("A000002") != first
    assert first != uuid.uuid5(OLD_APPLICATION_NS, "A000001")
    assert first.version == 4
    use_id_key("another city's key, just as long as ours")
    assert message_id_for("A000001") != first  # the key, not the public id, decides


def test_cloudsign_conclusions_are_keyed_per_document(city_key: str) -> None:
    env = CloudSignConnector.envelope(_declined("doc-1"), case_id="R8-001",
                                      procuring_entity="city")
    again = CloudSignConnector.envelope(_declined("doc-1"), case_id="R8-001",
                                        procuring_entity="city")
    assert env.message_id == again.message_id
    assert env.message_id != uuid.uuid5(OLD_CLOUDSIGN_NS, "cloudsign.declined:doc-1")
    assert env.message_id == keyed_uuid("cloudsign", f"{env.type}:doc-1")


def test_the_demo_key_is_known_as_such(city_key: str) -> None:
    assert not id_key_is_demo()
    use_id_key(None)
    assert id_key_is_demo()
