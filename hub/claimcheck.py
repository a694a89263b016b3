"""Claim checks: a record too large for Kafka travels by reference.

Before an outbox row is queued (``hub.outbox.insert_records``, ``enqueue_raw``) and again
before the relay sends it, its size is checked against the largest record the cluster
takes (``KafkaSettings.max_record_bytes``). A larger value is stored in
``hub_claim_check`` and the record carries a small pointer instead: the same key and
headers, plus ``x-hub-claim-check`` (the reference) and ``x-hub-claim-check-bytes``, and a
JSON value naming both. The hub's consumers resolve pointers before decoding
(:func:`resolve`), so handlers see the original value; a dead letter of an oversized
record is a pointer too, and ``hub dlq list`` shows it with its reason.

A pointer whose value is gone (pruned after its retention, hub/retention.py, or written by
another hub's database) is dead-lettered as ``oversize`` with that explanation.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import metrics
from hub.db import ClaimCheckRecord
from schemas.wire import Headers, header

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "H_CLAIM", "H_CLAIM_BYTES", "check_in", "configure",
           "is_pointer", "max_record_bytes", "record_size", "resolve", "stored_value"]

H_CLAIM = "x-hub-claim-check"
H_CLAIM_BYTES = "x-hub-claim-check-bytes"
CLAIM_CHECKS = ClaimCheckRecord.__table__  # type: ignore[attr-defined]

DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""Below the broker's default ``message.max.bytes`` (1,048,588) with room for the batch's
framing: a record this size is accepted by any cluster left at its defaults."""
RECORD_OVERHEAD = 128
"""Framing of one record in its own batch (batch header 61 bytes, record varints)."""

_limit = DEFAULT_MAX_RECORD_BYTES


def configure(max_bytes: int) -> None:
    """Set the largest record sent inline (``hub run`` sets it from its settings)."""
    global _limit  # noqa: PLW0603 - one value per process, read on every queued row
    _limit = max_bytes


def max_record_bytes() -> int:
    return _limit


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """What a record takes on the wire, at most (its batch alone)."""
    return (RECORD_OVERHEAD + len(key or b"") + len(value or b"")
            + sum(len(k) + 8 + len(v or b"") for k, v in headers))


def is_pointer(headers: Any) -> bool:
    return any(k == H_CLAIM for k, _ in headers or ())


def check_in(session: Session, topic: str, *, key: bytes | None, value: bytes,
             headers: Headers, now: datetime) -> tuple[bytes, Headers]:
    """Store ``value`` in ``hub_claim_check`` (in ``session``'s transaction); returns the
    pointer's value and headers."""
    del key  # the pointer keeps the record's key; the stored value is enough to restore it
    ref = uuid.uuid4().hex
    digest = hashlib.sha256(value).hexdigest()
    session.execute(sa.insert(CLAIM_CHECKS).values(ref=ref, topic=topic, value=value,
                                                   size=len(value), sha256=digest,
                                                   created_at=now))
    kept = [(k, v) for k, v in headers if k not in (H_CLAIM, H_CLAIM_BYTES)]
    pointer = orjson.dumps({"claim_check": ref, "bytes": len(value), "sha256": digest,
                            "note": "stored by reference: the value is in the hub's "
                                    "database (hub_claim_check)"})
    metrics.CLAIM_CHECKED.labels(topic).inc()
    return pointer, [*kept, (H_CLAIM, ref.encode()), (H_CLAIM_BYTES, str(len(value)).encode())]


def resolve(engine: Engine, deliveries: Sequence[Any]) -> None:
    """Replace each pointer's value by the value it refers to (and drop its claim headers).

    ``deliveries`` are :class:`hub.delivery.Delivery` objects not yet decoded. A pointer
    whose value is gone keeps its value and gets ``unresolved_claim`` set.
    """
    wanted = {d: header(d.headers, H_CLAIM) for d in deliveries if is_pointer(d.headers)}
    if not wanted:
        return
    refs = sorted({r for r in wanted.values() if r})
    with engine.connect() as conn:
        query = sa.select(CLAIM_CHECKS.c.ref, CLAIM_CHECKS.c.value).where(
            CLAIM_CHECKS.c.ref.in_(refs))
        values: dict[str, bytes] = {row.ref: row.value for row in conn.execute(query)}
    for d, ref in wanted.items():
        value = values.get(ref or "")
        if value is None:
            d.unresolved_claim = ref or "(empty)"
            continue
        d.value = bytes(value)
        d.headers = [(k, v) for k, v in d.headers if k not in (H_CLAIM, H_CLAIM_BYTES)]


def stored_value(engine: Engine, ref: str) -> bytes | None:
    """The value of one claim check, if it is still stored (``hub dlq show``)."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(CLAIM_CHECKS.c.value).where(
            CLAIM_CHECKS.c.ref == ref)).scalar()
    return None if value is None else bytes(value)
