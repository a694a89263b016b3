"""Work done once across ``hub run`` processes: leases of the periodic jobs (hub/leases.py)
and migrations started by several processes at once, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.db import create_db_engine
from hub.leases import Lease, LeaseRow
from hub.migrations import current_revision, upgrade
from hub.runtime import Hub, ScheduledJob
from tests.support.hubproc import settings_for, wait_for

pytestmark = [pytest.mark.postgres]

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_one_holder_at_a_time_and_a_dead_holders_lease_is_taken_after_expiry(
        pg_engine: Engine) -> None:
    clock = Clock()
    first = Lease(pg_engine, "job:propagate", ttl_s=30, holder="host-a:101", clock=clock)
    second = Lease(pg_engine, "job:propagate", ttl_s=30, holder="host-b:202", clock=clock)
    assert first.acquire()
    assert not second.acquire()
    clock.now += timedelta(seconds=20)
    assert first.acquire()  # renewed: until T0 + 50 s
    clock.now += timedelta(seconds=29)
    assert not second.acquire()
    assert first.holder_now() == "host-a:101"
    # host-a dies (SIGKILL: no release); its lease runs out and host-b takes it
    clock.now += timedelta(seconds=2)
    assert first.holder_now() is None
    assert second.acquire()
    assert not first.acquire()  # back from the dead, it does not take the lease back
    assert second.holder_now() == "host-b:202"
    second.release()
    assert first.acquire()  # a released lease is free at once
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.select(LeaseRow.__table__)).all()  # type: ignore[attr-defined]
    assert [(r.name, r.holder) for r in rows] == [("job:propagate", "host-a:101")]


def test_racing_processes_never_both_hold_a_lease(pg_engine: Engine) -> None:
    winners: list[str] = []
    start = threading.Barrier(8)

    def contend(n: int) -> None:
        engine = create_db_engine(pg_engine.url.render_as_string(hide_password=False))
        lease = Lease(engine, "job:race", ttl_s=60, holder=f"p{n}")
        start.wait()
        if lease.acquire():
            winners.append(lease.holder)
        engine.dispose()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1, winners


async def test_three_hubs_run_a_scheduled_job_in_one_process_and_take_it_over(
        pg_url: str, kafka_bootstrap: str, unique: str) -> None:
    """Three hubs in this process, each with the same job: one runs it; when that one
    stops (releasing) and another dies (holding, never renewing), a survivor takes over."""
    runs: dict[int, int] = {0: 0, 1: 0, 2: 0}

    def job_of(n: int) -> ScheduledJob:
        async def run(engine: Engine) -> Any:
            runs[n] += 1

        return ScheduledJob("every-100ms", 0.1, run, lease_ttl_s=1.0)

    hubs = [Hub(settings_for(kafka_bootstrap, pg_url, f"{unique}{n}"), [], jobs=[job_of(n)],
                serve_http=False) for n in range(3)]
    for hub in hubs:
        await hub.start()
    try:
        await wait_for(lambda: sum(runs.values()) >= 10, 30, "ten runs of the job")
        assert sorted(runs.values())[:2] == [0, 0], runs  # one process ran it
        (holder,) = [n for n, c in runs.items() if c]
        await hubs[holder].stop()
        left = [n for n in runs if n != holder]
        before = {n: runs[n] for n in left}
        await wait_for(lambda: any(runs[n] > before[n] for n in left), 30,
                       "another process taking the released job over")
        (second,) = [n for n in left if runs[n] > before[n]]
        # the second holder's host dies: its lease stays, unrenewed, until it expires
        # (written as a dead holder's row, so the living process cannot renew it either)
        expires = datetime.now(UTC) + timedelta(seconds=2)
        with hubs[second].engine.begin() as conn:
            conn.execute(sa.update(LeaseRow.__table__).values(  # type: ignore[attr-defined]
                holder="dead-host:1", expires_at=expires))
        (job_task,) = [t for t in hubs[second]._tasks if t.get_name() == "job-every-100ms"]
        job_task.cancel()  # its process is gone: it neither runs nor releases
        await asyncio.gather(job_task, return_exceptions=True)
        hubs[second]._tasks.remove(job_task)
        (third,) = [n for n in left if n != second]
        before3 = runs[third]
        await wait_for(lambda: runs[third] > before3, 30,
                       "the last process taking the dead holder's lease after it expired")
        assert datetime.now(UTC) >= expires
    finally:
        for hub in hubs:
            if not hub._stopped.is_set():
                await hub.stop()


def test_processes_upgrading_together_all_succeed(pg_engine: Engine) -> None:
    """Several processes start at once on an empty database: each upgrades, none fails."""
    with pg_engine.begin() as conn:  # back to an empty database
        conn.execute(sa.text("drop schema public cascade"))
        conn.execute(sa.text("create schema public"))
    url = pg_engine.url.render_as_string(hide_password=False)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        engine = create_db_engine(url)
        try:
            start.wait()
            upgrade(engine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_revision(pg_engine) is not None
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from alembic_version")).scalar() == 1
