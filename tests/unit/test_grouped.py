"""pipelines.registration.grouped.Grouped: the groups follow every change of the dict, and
the World's look-ups through them answer as the scans they replaced (REG-1, REG-11)."""

from __future__ import annotations

import copy
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.registration.grouped import Grouped
from pipelines.registration.world import Contractor, World


def parity(v: int) -> tuple[str, ...]:
    return ("even",) if v % 2 == 0 else ("odd", "any-odd")


def scan(d: dict[str, int], name: str) -> list[int]:
    return [v for v in d.values() if name in parity(v)]


ops = st.lists(st.tuples(st.sampled_from(["set", "del", "pop", "setdefault", "update",
                                          "ior", "popitem", "clear"]),
                         st.sampled_from("abcdef"), st.integers(0, 9)), max_size=60)


@given(ops)
@settings(max_examples=300, deadline=None)
def test_groups_follow_every_change(steps: list[tuple[str, str, int]]) -> None:
    grouped: Grouped[str, int] = Grouped(parity)
    plain: dict[str, int] = {}
    for op, key, value in steps:
        for d in (grouped, plain):
            if op == "set":
                d[key] = value
            elif op == "del" and key in d:
                del d[key]
            elif op == "pop":
                d.pop(key, None)
            elif op == "setdefault":
                d.setdefault(key, value)
            elif op == "update":
                d.update({key: value})
            elif op == "ior":
                d |= {key: value}
            elif op == "popitem" and d:
                d.popitem()
            elif op == "clear" and value == 0:
                d.clear()
        assert dict(grouped) == plain
        for name in ("even", "odd", "any-odd"):
            assert sorted(grouped.group(name)) == sorted(scan(plain, name))
    again = copy.deepcopy(grouped)
    again["z"] = 2
    assert sorted(again.group("even")) == sorted(scan({**plain, "z": 2}, "even"))
    assert sorted(grouped.group("even")) == sorted(scan(plain, "even"))  # the copy is its own


def contractor(network: str, user: str, key: str, number: str | None) -> Contractor:
    return Contractor(network, user, f"E{user}", f"商号{key}", key, number, None)


def test_world_lookups_answer_as_the_scans_did() -> None:
    rng = random.Random(7)
    world = World()
    for i in range(400):
        c = contractor(rng.choice(["n1", "n2"]), f"{i:010d}", rng.choice("abcde"),
                       rng.choice([None, "1111", "2222"]))
        world.contractors[(c.network, c.user_id)] = c
    # a changed company key and 法人番号 move the contractor to its new groups
    moved = contractor("n1", f"{0:010d}", "zzz", "9999")
    world.contractors[("n1", moved.user_id)] = moved
    for network in ("n1", "n2"):
        for key in "abcdez":
            for number in (None, "1111", "2222", "9999"):
                expected = {c.user_id for c in world.contractors.values()
                            if c.network == network and (c.company_key == key or (
                                number is not None and c.corporate_number == number))}
                got = [c.user_id for c in world.contractors_like(network, key, number)]
                assert len(got) == len(set(got))  # each contractor once
                assert set(got) == expected, (network, key, number)
    copied = world.copy()
    assert {c.user_id for c in copied.contractors_like("n1", "zzz", None)} == {moved.user_id}
