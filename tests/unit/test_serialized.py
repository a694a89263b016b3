"""A payload's JSON text is made once while the hub's batch writes it twice (REG-9: the
PropagationScheduled event and the pending propagation's row), and is the text pydantic
gives, byte for byte."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from pipelines.registration import World, apply, decide, default_policy_book
from pipelines.registration.common import Outcome
from schemas.envelope import JST, Envelope, caused_envelope
from schemas.fast import _keep as keep
from schemas.fast import model_json, remembering
from schemas.registration import CardRegistered, PropagationScheduled
from schemas.wire import decode, encode
from storage.bulk import json_of
from tests.support.registration import (
    card,
    command,
    last_service_time,
    qualification,
    register,
)

USER = "1234567890"


def _accepted_registration() -> tuple[Envelope[Any], list[Envelope[Any]]]:
    """A first registration at saitama-pref (REG-1) and the envelopes of what it emits."""
    world, now = World(), datetime.now(JST)
    for entity in ("saitama-pref", "kawagoe-city"):
        apply(world, qualification(entity, USER), now)
    acted = last_service_time("saitama-pref")
    cmd = command(register(USER, card("7001"), "ic@example.jp"), acted_at=acted)
    decision = decide(world, cmd.payload, default_policy_book(), now, acted_at=acted)
    assert decision.outcome is Outcome.ACCEPTED, decision.violations
    out = [caused_envelope(p, cmd, producer="test", occurred_at=now)
           for p in (*decision.events, *decision.mails)]
    return cmd, out


def test_every_payload_text_is_pydantics_and_is_kept_inside_the_block_reg9() -> None:
    _, envelopes = _accepted_registration()
    kinds = {type(e.payload) for e in envelopes}
    assert {CardRegistered, PropagationScheduled} <= kinds
    with remembering():
        for env in envelopes:
            _, value, headers = encode(env)
            assert value == env.model_dump_json().encode()
            assert decode(value, headers) == env
            kept = model_json(env.payload)
            assert kept == env.payload.model_dump_json()
            # Served from the memo: the very same string object each time, not made again.
            assert model_json(env.payload) is kept
        propagation = next(e.payload for e in envelopes
                           if isinstance(e.payload, PropagationScheduled))
        # The pending propagation's row (json_of) carries the text its event was sent with.
        assert orjson.dumps(json_of(propagation)) == propagation.model_dump_json().encode()


def test_nothing_is_kept_outside_the_block_or_after_it() -> None:
    _, envelopes = _accepted_registration()
    payload = envelopes[0].payload
    encode(envelopes[0])
    assert model_json(payload) is not model_json(payload)  # made again each time
    with remembering():
        encode(envelopes[0])
        with remembering():  # a nested block keeps the outer one's memo
            assert model_json(payload) is model_json(payload)
        assert model_json(payload) is model_json(payload)
    assert model_json(payload) is not model_json(payload)


def test_the_memo_goes_by_identity_not_equality() -> None:
    _, envelopes = _accepted_registration()
    payload = envelopes[0].payload
    twin = payload.model_copy()
    assert twin == payload
    assert twin is not payload
    with remembering():
        keep(payload, '{"not":"this"}')
        assert model_json(payload) == '{"not":"this"}'
        assert model_json(twin) == payload.model_dump_json()


def test_the_payload_is_cut_at_its_own_key_whatever_the_other_fields_hold() -> None:
    cmd, envelopes = _accepted_registration()
    tricky = cmd.model_copy(update={"correlation_id": 'user-1,"payload":{"x":1}'})
    env = caused_envelope(envelopes[0].payload, tricky, producer="test",
                          occurred_at=datetime.now(JST))
    with remembering():
        _, value, _ = encode(env)
        # The decoy comes first, its quotes escaped: only the real key matches the mark.
        assert b',\\"payload\\":' in value.split(b',"payload":')[0]
        assert model_json(env.payload) == env.payload.model_dump_json()


def test_a_propagation_carries_its_source_events_text_reg9() -> None:
    """PropagationScheduled's last field is the CardRegistered payload sent just before:
    its kept text goes in as it is (shown here by keeping a marker instead)."""
    _, envelopes = _accepted_registration()
    scheduled = next(e for e in envelopes if isinstance(e.payload, PropagationScheduled))
    source = scheduled.payload.source
    assert isinstance(source, CardRegistered)
    with remembering():
        keep(source, '{"marker":1}')
        _, value, _ = encode(scheduled)
    assert value.endswith(b',"source":{"marker":1}}}')
    assert value.replace(b'{"marker":1}', source.model_dump_json().encode()) == \
        scheduled.model_dump_json().encode()
    _, plain, _ = encode(scheduled)  # outside the block: serialized in full
    assert plain == scheduled.model_dump_json().encode()
