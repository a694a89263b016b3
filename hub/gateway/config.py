"""What the gateway needs from the hub: the database, the trust roots, the clock, TTLs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from sqlalchemy.engine import Engine
from sqlmodel import Session

from pipelines.registration.policy import PolicyBook, default_policy_book

__all__ = ["GatewayConfig"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class GatewayConfig:
    """``card_roots``: CAs whose cards may authenticate; ``signature_roots``: roots a
    returned signature and its timestamp must chain to (card CAs and the TSA's);
    ``book``: the registration policy that log-ins and signing windows are judged by."""

    engine: Engine
    card_roots: tuple[x509.Certificate, ...]
    signature_roots: tuple[x509.Certificate, ...]
    session_ttl: dt.timedelta = dt.timedelta(minutes=15)
    challenge_ttl: dt.timedelta = dt.timedelta(minutes=2)
    producer: str = "hub.gateway"
    clock: Callable[[], dt.datetime] = field(default=_utcnow)
    on_signed: Callable[[Session, Any, dt.datetime], Any] | None = None
    """Called with (session, job, now) in the transaction that accepts a job's signed PDF,
    so the job's owner takes its next step in that same commit (the contract process)."""
    book: PolicyBook = field(default_factory=default_policy_book)

    def now(self) -> dt.datetime:
        return self.clock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One session in one transaction (outbox records commit with the change)."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session
