"""Shared helpers for tests that drive `hub.processing.Processor` directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.db import OutboxRecord

OUTBOX = OutboxRecord.__table__


class Clock:
    """A clock the test moves by hand (``clock.now += timedelta(...)``)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def outbox_rows(engine: Engine, topic: str) -> list[Any]:
    """The outbox rows bound for ``topic``, in the order they were written."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(OUTBOX).where(OUTBOX.c.topic == topic)
                                 .order_by(OUTBOX.c.id)))
