"""Leases: periodic work that exactly one ``hub run`` process does at a time.

Consumers share their work through Kafka's consumer groups; a periodic job (review-link
expiry, the REG-9 propagation batch, pollers) has no partition to own, so it takes a
lease in the database instead: one row per job in ``hub_lease`` naming its holder and
when the lease ends. A process runs the job only while it holds the lease, and renews it
while it runs; a lease whose holder died (SIGKILL, a lost host) is taken over by another
process once it has expired. Taking and renewing is one statement (an upsert that only
overwrites an expired lease or the holder's own), so two processes never both hold it.

On SQLite the hub is one process: :meth:`Lease.acquire` succeeds without a row.

The jobs stay idempotent (their commands carry message ids derived from what they are
about), so a lease is about not doing work twice, not about correctness: a holder that
stalls past its expiry and overlaps with the next one yields no second effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from hub.db import UtcTimestamp, is_postgres

__all__ = ["Lease", "LeaseRow", "holder_id"]

log = logging.getLogger(__name__)


class LeaseRow(SQLModel, table=True):
    """Who holds a periodic job's lease, and until when."""

    __tablename__ = "hub_lease"

    name: str = Field(primary_key=True, max_length=100)
    holder: str = Field(max_length=200)
    expires_at: datetime = Field(sa_type=UtcTimestamp)
    acquired_at: datetime = Field(sa_type=UtcTimestamp)


LEASES = LeaseRow.__table__  # type: ignore[attr-defined]

def holder_id() -> str:
    """A new holder's name: host, pid and a random part (pids repeat; one process may run
    several hubs, as tests do)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Lease:
    """The lease ``name``, as held (or wanted) by ``holder`` for ``ttl_s`` at a time."""

    def __init__(self, engine: Engine, name: str, *, ttl_s: float,
                 holder: str | None = None, clock: Callable[[], datetime] = _utcnow) -> None:
        if ttl_s <= 0:
            raise ValueError("a lease lasts a positive time")
        self.engine, self.name, self.ttl = engine, name, timedelta(seconds=ttl_s)
        self.holder = holder or holder_id()
        self._clock = clock
        self._shared = is_postgres(engine)

    def acquire(self) -> bool:
        """Take the lease or renew it; True when this holder has it until now + ttl."""
        if not self._shared:
            return True
        now = self._clock()
        stmt = postgresql.insert(LEASES).values(name=self.name, holder=self.holder,
                                                expires_at=now + self.ttl, acquired_at=now)
        upsert = stmt.on_conflict_do_update(
            index_elements=[LEASES.c.name],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at,
                  "acquired_at": sa.case((LEASES.c.holder == stmt.excluded.holder,
                                          LEASES.c.acquired_at), else_=stmt.excluded.acquired_at)},
            where=sa.or_(LEASES.c.holder == stmt.excluded.holder, LEASES.c.expires_at <= now),
        ).returning(LEASES.c.holder)
        with self.engine.begin() as conn:
            got = conn.execute(upsert).scalar()
        return got == self.holder

    def release(self) -> None:
        """Give the lease up (at a clean stop), so another process takes it at once."""
        if not self._shared:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(LEASES).where(LEASES.c.name == self.name,
                                                 LEASES.c.holder == self.holder))

    def holder_now(self) -> str | None:
        """Who holds the lease now (None: nobody, or it has expired)."""
        if not self._shared:
            return self.holder
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(LEASES.c.holder, LEASES.c.expires_at)
                               .where(LEASES.c.name == self.name)).first()
        return None if row is None or row.expires_at <= self._clock() else str(row.holder)

    @contextlib.asynccontextmanager
    async def renewed(self) -> AsyncIterator[None]:
        """Renew the lease every third of its time while the body runs (a long batch)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.ttl.total_seconds() / 3)
                try:
                    if not await asyncio.to_thread(self.acquire):
                        log.warning("lease %s was taken over while its job ran", self.name)
                except Exception:
                    log.exception("lease %s: renewing failed; trying again", self.name)

        task = asyncio.create_task(renew(), name=f"lease-{self.name}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
