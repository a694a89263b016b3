"""What a pipeline handler may use, and nothing more (cosmicpython's unit of work).

The hub runs each handler inside one database transaction per batch of records:
the handler reads and writes state through ``session``, and publishes through
``emit``, which writes to the transactional outbox in that same transaction.
Whatever a handler does is committed together with the record of the message as
processed, so a redelivered message has no second effect.

A handler raises:
- :class:`PermanentFailure` when the message can never succeed (it goes to the
  dead-letter topic at once, with the reason);
- any other exception for a transient failure (it is retried with backoff, then
  dead-lettered).
A business rejection is not an exception: emit a rejection event instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from schemas.envelope import Envelope
from schemas.registry import Payload
from schemas.topics import TopicSpec

__all__ = ["Handler", "HandlerContext", "PermanentFailure", "SigningJobs"]


class HandlerContext(Protocol):
    @property
    def session(self) -> Session:
        """The batch's database session (inside its transaction; do not commit)."""

    @property
    def now(self) -> datetime:
        """The time of processing (aware, UTC); rules take it from here, not the clock."""

    def append_row(self, table: sa.Table, row: dict[str, Any]) -> None:
        """Insert ``row`` into ``table`` with the batch: one multi-row INSERT at its end.

        For append-only records (journals, ledgers, audit trails) on a hot path; what must
        be read back within the same batch goes through ``session`` instead.
        """

    def emit(self, topic: TopicSpec, payload: Payload, *, cause: Envelope[Any],
             correlation_id: str | None = None, entity: str | None = None) -> Envelope[Any]:
        """Publish ``payload`` (caused by ``cause``) through the outbox."""


class PermanentFailure(Exception):
    """The message cannot succeed however often it is retried."""

    def __init__(self, reason: str, *, rule_ids: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.rule_ids = rule_ids


Handler = Callable[[HandlerContext, Envelope[Any]], None]


class SigningJobs(Protocol):
    """Where a pipeline queues a document for a contractor's IC-card signature (CON-2).

    The hub provides it (the card gateway's signing jobs); the job is written with the
    handler's ``session``, so it exists exactly when the handler's transaction commits.
    """

    def create_job(self, session: Session, *, network: str, user_id: str,
                   procuring_entity: str, subject: str, parties: list[str], amount_yen: int,
                   document: bytes, now: datetime) -> str:
        """Queue ``document`` for ``user_id`` of ``network`` to sign; return the job's id."""
        ...
