"""One outbox relay per database polls for orphans (the leader, by a PostgreSQL advisory
lock); the others ask for the lock at most once per ``LEADER_RETRY_S``, not at every
poll, and take over once the leader is gone."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub import outbox
from hub.outbox import LEADER_RETRY_S, OutboxRelay
from hub.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lock_calls(engine: Engine) -> list[str]:
    """The advisory-lock statements ``engine`` runs from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_try_advisory_lock" in statement:
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen


def test_a_follower_asks_for_the_lock_once_per_interval_and_takes_over(
        pg_url: str, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(outbox.time, "monotonic", clock)
    settings = Settings(database_url=pg_url)  # type: ignore[arg-type]
    leader, follower = OutboxRelay(settings, pg_engine), OutboxRelay(settings, pg_engine)
    try:
        assert leader._hold_leadership()
        asked = lock_calls(pg_engine)
        assert not follower._hold_leadership()
        assert len(asked) == 1
        for _ in range(5):  # the polls within the interval do not ask PostgreSQL
            clock.now += LEADER_RETRY_S / 10
            assert not follower._hold_leadership()
        assert len(asked) == 1
        clock.now += LEADER_RETRY_S
        assert not follower._hold_leadership()  # asked again: still held
        assert len(asked) == 2

        leader._release_leadership()  # the leader's connection is gone (it died)
        assert not follower._hold_leadership()  # within the interval: not yet asked
        clock.now += LEADER_RETRY_S
        assert follower._hold_leadership()
        assert len(asked) == 3
        clock.now += LEADER_RETRY_S / 10
        assert follower._hold_leadership()  # the leader does not ask again
        assert len(asked) == 3
    finally:
        leader._release_leadership()
        follower._release_leadership()
