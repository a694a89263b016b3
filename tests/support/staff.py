"""A staff identity for tests that exercise the staff routes themselves, not who calls them:
one static token standing for every entity and role (docs/identity.md)."""

from __future__ import annotations

import hashlib

from hub.identity import Role, StaffIdentity
from hub.settings import StaffTokenSettings

TOKEN = "test-staff-token-for-every-entity"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def every_entity(token: str = TOKEN) -> StaffIdentity:
    return StaffIdentity(tokens=[StaffTokenSettings(
        sha256=hashlib.sha256(token.encode()).hexdigest(), subject="test-staff", kind="client",
        entities=("*",), roles=tuple(r.value for r in Role))])
