"""Property tests (hypothesis) of the registration rules over random command streams:

- a card never belongs to two user IDs (REG-1);
- a revoked card never authenticates (RNW-7);
- a renewal from a valid card never leaves the user ID without a usable card (RNW-7);
- a rejected command changes nothing;
- replaying any command stream twice gives the same state (deterministic decisions).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.registration import World, apply, decide, default_policy_book
from pipelines.registration.common import Outcome
from pipelines.registration.rules import apply_decision, run_pending
from pipelines.registration.world import PropagationStatus, RegistrationStatus, usable_card
from schemas.registration import CardRenewalRequested, Domain
from tests.unit.test_registration_rules import (
    ISSUER,
    NOW,
    card,
    change,
    command_of,
    contact,
    qual,
    qualification_update,
    register,
    renew,
)

USERS = ("1234567890", "2222222222")
ENTITIES = ("saitama-pref", "kawagoe-city")
SERIALS = ("1", "2", "3", "5")
OLD_AUTH, NEW_AUTH = "2026-11-24T09:58:00+09:00", "2026-11-24T09:59:00+09:00"
NOW_DT = datetime.fromisoformat(NOW)


def _card(serial: str, auth: str = OLD_AUTH) -> dict[str, Any]:
    # Card 5 expires tomorrow: registrations warn, and the "next day" batch finds it expired.
    not_after = "2026-11-25T00:00:00+09:00" if serial == "5" else "2030-11-20T23:59:59+09:00"
    return card(serial, not_after=not_after, auth=auth)


registrations = st.builds(
    lambda u, s, e, at_once: ("register", register(
        user_id=u, the_card=_card(s), entity=e,
        apply_now_to=tuple(x for x in ENTITIES if x != e) if at_once else ())),
    st.sampled_from(USERS), st.sampled_from(SERIALS), st.sampled_from(ENTITIES), st.booleans())
changes = st.builds(
    lambda u, s, e, mail, other: ("change", change(
        user_id=u, the_card=_card(s), entity=e, dept=contact(mail),
        apply_to_other_entities=other)),
    st.sampled_from(USERS), st.sampled_from(SERIALS), st.sampled_from(ENTITIES),
    st.sampled_from(("a@example.jp", "b@example.jp")), st.booleans())
renewals = st.builds(
    lambda u, old, new, e, other: ("renew", renew(
        user_id=u, old=_card(old), new=_card(new, NEW_AUTH), entity=e,
        apply_to_other_entities=other)),
    st.sampled_from(USERS), st.sampled_from(SERIALS), st.sampled_from(("6", "7", "2")),
    st.sampled_from(ENTITIES), st.booleans())
batches = st.just(("batch", {}))
# Streams open with registrations so that changes and renewals find cards to act on.
streams = st.tuples(
    st.lists(registrations, min_size=1, max_size=4),
    st.lists(st.one_of(registrations, changes, renewals, batches), max_size=12),
).map(lambda parts: parts[0] + parts[1])


def fresh_world() -> World:
    world = World()
    for user in USERS:
        for entity in ENTITIES:
            apply(world, qualification_update(qual(entity, user_id=user)), NOW_DT)
    return world


def run_batch(world: World, now: datetime) -> None:
    for pending in list(world.propagations.values()):
        if pending.status is PropagationStatus.PENDING:
            run_pending(world, pending, now)


def play(stream: list[tuple[str, dict[str, Any]]], check: bool = False) -> World:
    """Decide and apply each step; with ``check``, assert the step invariants."""
    book, world = default_policy_book(), fresh_world()
    for kind, step in stream:
        if kind == "batch":
            run_batch(world, NOW_DT + timedelta(days=1, hours=-7))  # next day, 03:00 JST
            continue
        command = command_of(step)
        before = world.copy()
        decision = decide(world, command, book, NOW_DT)
        apply_decision(world, decision, NOW_DT)
        if not check:
            continue
        if decision.outcome is not Outcome.ACCEPTED:
            assert world == before, "a rejected or held command changed the state"
        if decision.outcome is Outcome.ACCEPTED and isinstance(command, CardRenewalRequested):
            assert usable_card(world, command.new_card.key, NOW_DT,
                               entity=command.procuring_entity, domain=command.domain)
            assert usable_card(world, command.old_card.key, NOW_DT,
                               entity=command.procuring_entity, domain=command.domain) is None
        owners: dict[tuple[str, str], str] = {k: c.user_id for k, c in before.cards.items()}
        for key, c in world.cards.items():
            assert owners.get(key, c.user_id) == c.user_id, "a card moved to another user ID"
    return world


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams)
def test_card_never_belongs_to_two_user_ids_and_renewal_keeps_a_usable_card(
        stream: list[tuple[str, dict[str, Any]]]) -> None:
    world = play(stream, check=True)
    seen: dict[tuple[str, str], str] = {}
    for key, c in world.cards.items():
        assert seen.setdefault(key, c.user_id) == c.user_id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams)
def test_revoked_card_never_authenticates(stream: list[tuple[str, dict[str, Any]]]) -> None:
    world = play(stream)
    for key, c in world.cards.items():
        for (entity, domain), reg in c.registrations.items():
            if reg.status is RegistrationStatus.REVOKED:
                assert usable_card(world, key, NOW_DT, entity=entity, domain=domain) is None
        if c.registrations and all(r.status is RegistrationStatus.REVOKED
                                   for r in c.registrations.values()):
            assert usable_card(world, key, NOW_DT) is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams)
def test_replaying_a_stream_twice_gives_the_same_state(
        stream: list[tuple[str, dict[str, Any]]]) -> None:
    assert play(stream) == play(stream)


def test_renewal_scenario_keeps_user_usable_across_entities() -> None:
    """A concrete stream the properties cover: register at both, renew here, batch."""
    stream = [("register", register(the_card=_card("1"), apply_now_to=("kawagoe-city",))),
              ("renew", renew(old=_card("1"), new=_card("2", NEW_AUTH),
                              apply_to_other_entities=True)),
              ("batch", {})]
    world = play(stream, check=True)
    for entity in ENTITIES:
        assert usable_card(world, (ISSUER, "2"), NOW_DT, entity=entity, domain=Domain.WORKS)
        assert usable_card(world, (ISSUER, "1"), NOW_DT, entity=entity,
                           domain=Domain.WORKS) is None
