"""Random message ids (UUID version 4) without a system call per id.

``uuid.uuid4()`` reads 16 bytes from ``os.urandom`` for every id, and that call lets go of
the interpreter lock. A thread building hundreds of events then gives the lock away at
every event: with a second busy thread in the process (the event loop beside a batch's
worker thread, or two batches at once as tried in docs/performance.md) that cost a
context switch per event. Here the
same random source is read 4 KiB at a time. A forked child starts with a fresh pool, so
parent and child never hand out the same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import uuid
from typing import Annotated

from pydantic import Field

__all__ = [
    "CASE_ID_PATTERN",
    "DEMO_ID_KEY",
    "CaseId",
    "id_key_is_demo",
    "keyed_uuid",
    "random_uuid",
    "use_id_key",
    "v4_from",
]

_IDS_PER_READ = 256


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.data = b""
        self.at = 0

    def take(self) -> bytes:
        with self.lock:
            if self.at >= len(self.data):
                self.data, self.at = os.urandom(16 * _IDS_PER_READ), 0
            start = self.at
            self.at = start + 16
            return self.data[start:start + 16]


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


# What ``uuid.UUID(bytes=b, version=4)`` does to the 128 bits: the RFC 4122 variant, then
# version 4. Its __init__ checks and branches in Python for every id; three ids per
# registration went through it.
_KEEP = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_MARK = (0x8000 << 48) | (4 << 76)
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def v4_from(sixteen: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=sixteen, version=4)``, equal in every attribute."""
    made: uuid.UUID = _new(uuid.UUID)
    _set(made, "int", int.from_bytes(sixteen) & _KEEP | _MARK)
    _set(made, "is_safe", _UNKNOWN)
    return made


def random_uuid() -> uuid.UUID:
    """A version-4 UUID from ``os.urandom``, as ``uuid.uuid4()`` makes it."""
    return v4_from(_pool.take())


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
    return v4_from(digest[:16])
