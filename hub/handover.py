"""Outbox rows written with :func:`hub.outbox.enqueue` leave at their commit, not at a poll.

The gateway, the review page, the staff API and the jobs write their commands with
``enqueue`` in their own transactions. The relay's poll takes only rows older than
``outbox_orphan_age_s`` (so that it never races the process sending its own rows), so
each such command waited at least that long: every step a person takes over HTTP. Here a
session listener collects the outbox rows a transaction inserts and, once it commits,
hands them to the relay of the ``hub run`` process whose engine wrote them
(:func:`attach`), which sends them at once. A transaction rolled back hands over
nothing. Rows of an engine without an attached relay (a CLI command, another process)
are left to the poll, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.db import OutboxRecord
from hub.outbox import OutboxRelay, PendingRecord

__all__ = ["attach", "detach"]

_KEY = "hub.handover.pending"
_relays: dict[Engine, tuple[OutboxRelay, asyncio.AbstractEventLoop]] = {}
_lock = threading.Lock()


def attach(engine: Engine, relay: OutboxRelay) -> None:
    """Hand the rows ``engine``'s sessions commit to ``relay`` (call from its event loop)."""
    with _lock:
        _relays[engine] = (relay, asyncio.get_running_loop())


def detach(engine: Engine) -> None:
    with _lock:
        _relays.pop(engine, None)


def _engine_of(session: Session) -> Engine | None:
    bind: Any = session.get_bind()
    return bind if isinstance(bind, Engine) else getattr(bind, "engine", None)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    if not _relays:
        return
    rows = [o for o in session.new if isinstance(o, OutboxRecord) and o.id is not None]
    if rows:
        session.info.setdefault(_KEY, []).extend(
            PendingRecord(o.id, o.topic, o.key, o.value, o.headers)  # type: ignore[arg-type]
            for o in rows)


@event.listens_for(Session, "after_commit")
def _hand_over(session: Session) -> None:
    records: list[PendingRecord] | None = session.info.pop(_KEY, None)
    if not records:
        return
    engine = _engine_of(session)
    with _lock:
        target = _relays.get(engine) if engine is not None else None
    if target is None:
        return
    relay, loop = target
    with contextlib.suppress(RuntimeError):  # the loop has closed: the poll sends them
        loop.call_soon_threadsafe(relay.dispatch, records)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)
