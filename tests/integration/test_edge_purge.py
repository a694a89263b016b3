"""The edge's purge (hub/gateway/purge.py) on SQLite and PostgreSQL: used and expired
login challenges, expired card sessions and long-expired review links are deleted; what
still works stays; ``hub run``'s default wiring schedules it from the settings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.bootstrap import edge_purge
from hub.gateway.cardauth import consume_challenge, issue_challenge
from hub.gateway.models import ChallengeRow, SessionRow
from hub.gateway.purge import Purged, purge_edge, purge_job
from hub.settings import HttpSettings, Settings
from pipelines.contract.links import FreshLink, find_link, record_link

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
KEEP = timedelta(days=30)


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _session(token_hash: str, expires_at: datetime) -> SessionRow:
    return SessionRow(token_hash=token_hash, network="tochigi", user_id="U1", company_id="C1",
                      issuer="CN=ca", serial="1", created_at=T0, expires_at=expires_at)


def test_used_and_expired_credentials_go_and_live_ones_stay(engine: Engine) -> None:
    challenges = ChallengeRow.__table__  # type: ignore[attr-defined]
    sessions = SessionRow.__table__  # type: ignore[attr-defined]
    live_link, old_link = FreshLink.draw(), FreshLink.draw()
    with Session(engine) as db, db.begin():
        ids = [issue_challenge(db, T0, timedelta(minutes=2)).id for _ in range(200)]
        db.add(_session("a" * 64, T0 + timedelta(minutes=15)))
        db.add(_session("b" * 64, T0 - timedelta(seconds=1)))
        record_link(db, "R8-1", live_link, number=1, created_at=T0,
                    expires_at=T0 + timedelta(days=7))
        record_link(db, "R8-2", old_link, number=1, created_at=T0 - KEEP * 2,
                    expires_at=T0 - KEEP - timedelta(seconds=1))
    with Session(engine) as db, db.begin():
        consume_challenge(db, ids[0], T0 + timedelta(seconds=5))
    assert purge_edge(engine, T0 + timedelta(minutes=1), KEEP) == Purged(
        challenges=1, sessions=1, review_links=1)
    assert _count(engine, challenges) == 199
    assert _count(engine, sessions) == 1
    assert purge_edge(engine, T0 + timedelta(minutes=3), KEEP) == Purged(199, 0, 0)
    assert _count(engine, challenges) == 0  # 200 challenges leave no row behind
    with Session(engine) as db:
        assert db.get(SessionRow, "a" * 64) is not None
        assert find_link(db, live_link.token) is not None
        assert find_link(db, old_link.token) is None


def test_hub_run_schedules_the_purge_from_the_settings(engine: Engine) -> None:
    job = edge_purge(Settings(http=HttpSettings(purge_interval_s=60,
                                                keep_expired_links_days=1)))
    assert (job.name, job.interval_s) == ("edge-purge", 60)
    with Session(engine) as db, db.begin():
        issue_challenge(db, T0, timedelta(minutes=2))
    found = asyncio.run(purge_job(60, KEEP, clock=lambda: T0 + timedelta(hours=1)).run(engine))
    assert found == Purged(1, 0, 0)
