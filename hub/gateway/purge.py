"""The edge's expired credentials, deleted on a schedule: login challenges (used or
past their expiry), card sessions past their expiry, and review links some time after
theirs (CON-3: until then an expired link still offers a re-send).

Each is useless once expired, so deleting it changes no answer: a stale challenge or
session is refused as unknown exactly as it was refused as expired. The purge is one
DELETE per table by the expiry indexes (migration 0010), in its own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.gateway.models import ChallengeRow, SessionRow
from hub.runtime import ScheduledJob
from pipelines.contract.links import purge_links
from schemas.envelope import utc_now

__all__ = ["Purged", "purge_edge", "purge_job"]


@dataclass(frozen=True)
class Purged:
    challenges: int
    sessions: int
    review_links: int


def _delete_expired(session: Session, table: sa.Table, now: datetime) -> int:
    result = session.execute(sa.delete(table).where(table.c.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def purge_edge(engine: Engine, now: datetime, keep_expired_links: timedelta) -> Purged:
    """Delete what has expired; the counts. Used challenges go with the expired ones:
    a used challenge is refused whether or not its row is there."""
    challenges = ChallengeRow.__table__  # type: ignore[attr-defined]
    with Session(engine) as session, session.begin():
        used = session.execute(sa.delete(challenges).where(challenges.c.used_at.is_not(None)))
        return Purged(
            challenges=_delete_expired(session, challenges, now) + int(used.rowcount or 0),  # type: ignore[attr-defined]
            sessions=_delete_expired(session, SessionRow.__table__, now),  # type: ignore[attr-defined]
            review_links=purge_links(session, now, keep_expired_links))


def purge_job(interval_s: float, keep_expired_links: timedelta,
              clock: Callable[[], datetime] = utc_now) -> ScheduledJob:
    """``hub run``'s job (``HUB_HTTP__PURGE_INTERVAL_S``, ``…KEEP_EXPIRED_LINKS_DAYS``)."""

    async def run(engine: Engine) -> Purged:
        return await asyncio.to_thread(purge_edge, engine, clock(), keep_expired_links)

    return ScheduledJob("edge-purge", interval_s, run)
