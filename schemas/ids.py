"""Ids with rules of their own: case ids (a safe alphabet, DAT-1) and keyed message ids
(DAT-5). Random message ids are made by :func:`schemas.fast.random_id`."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated

from pydantic import Field

__all__ = [
    "CASE_ID_PATTERN",
    "DEMO_ID_KEY",
    "CaseId",
    "id_key_is_demo",
    "keyed_uuid",
    "use_id_key",
]


# Case ids (案件番号) become file names (the signed PDF, its mail copy) and URL path
# segments, and they arrive from outside (Kafka, the online application system). So they
# are drawn from a safe alphabet only: ASCII letters and digits, '-', '_', kana, kanji and
# '々', with single dots between them (no leading, trailing or double dot: never '..').
# No separator, no control character, no space: a path built from one stays one name.
_CASE_CHAR = "0-9A-Za-z_\\-ぁ-ゖァ-ヺー一-鿿々"
CASE_ID_PATTERN = f"^[{_CASE_CHAR}]+(?:\\.[{_CASE_CHAR}]+)*$"
"""The safe alphabet of a case id (docs/security.md, DAT-1)."""

CaseId = Annotated[str, Field(
    min_length=1, max_length=100, pattern=CASE_ID_PATTERN,
    description="案件番号: ASCII letters and digits, '-', '_', kana, kanji, '々', and single "
    "dots between them (never '..', '/', '\\\\', spaces or control characters).")]


# Message ids that must repeat for the same outside event (so the idempotent consumer drops
# the webhook's and the poller's second copy) are an HMAC of that event under the hub's own
# key (HUB_ID_KEY), never a uuid5 of public values: whoever could compute the id could
# publish it first and have the real message dropped as a duplicate (DAT-5).
DEMO_ID_KEY = "procurement-hub embedded demo id key: public, never for production"
"""The embedded default (the production check refuses it)."""

_id_key = {"key": DEMO_ID_KEY.encode()}


def use_id_key(key: str | None) -> None:
    """Derive keyed ids with ``key`` from now on (``None``: the demo key)."""
    _id_key["key"] = (key or DEMO_ID_KEY).encode()


def id_key_is_demo() -> bool:
    return _id_key["key"] == DEMO_ID_KEY.encode()


def keyed_uuid(purpose: str, value: str) -> uuid.UUID:
    """A version-4-shaped UUID from HMAC-SHA256(HUB_ID_KEY, purpose NUL value): the same
    for the same event, unpredictable without the key."""
    digest = hmac.new(_id_key["key"], f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
    return uuid.UUID(bytes=digest[:16], version=4)
