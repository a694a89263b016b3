"""A small pipeline for testing and benchmarking the delivery guarantees.

``LedgerEntryRequested`` in → one row in ``test_ledger_entry`` (the effect) and a
``LedgerEntryRecorded`` event out, in one transaction. The table has no unique
constraint on purpose: a doubled effect shows as two rows instead of an error.
Topic and group names come from the environment so that each test is alone:
``LEDGER_TOPIC_PREFIX`` (default ``test.ledger``).
"""

from __future__ import annotations

import os
import threading
from collections import Counter

import sqlalchemy as sa
from pydantic import Field as PayloadField
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from hub.bootstrap import Wiring
from hub.consumers import ConsumerSpec
from hub.db import create_db_engine
from hub.settings import Settings
from pipelines.ports import HandlerContext, PermanentFailure
from schemas.envelope import Envelope
from schemas.registry import Payload, message
from schemas.topics import KeyKind, TopicSpec

metadata = sa.MetaData()


class LedgerEntry(SQLModel, table=True):
    """The effect: one row per booked entry (no unique key, so a double shows)."""

    __tablename__ = "test_ledger_entry"
    metadata = metadata

    id: int | None = Field(default=None, primary_key=True)
    entry_no: int = Field(index=True)
    message_id: str = Field(max_length=64)
    amount: int = Field(sa_type=sa.BigInteger)
    worker: int


ledger_table = LedgerEntry.__table__


@message("test.ledger.entry-requested", 1)
class LedgerEntryRequested(Payload):
    entry_no: int = PayloadField(ge=0)
    amount: int
    fail_times: int = PayloadField(default=0, ge=0,
                                   description="Fail transiently this often first.")
    permanent: bool = False
    fail_flag: str | None = PayloadField(default=None,
                                         description="Fail while this file exists (a broken peer).")


@message("test.ledger.entry-recorded", 1)
class LedgerEntryRecorded(Payload):
    entry_no: int
    amount: int


class FlakyPeerError(Exception):
    """Stands for a transient outside failure."""


_failures: Counter[int] = Counter()
_failures_lock = threading.Lock()


def topics(prefix: str | None = None) -> tuple[TopicSpec, TopicSpec]:
    prefix = prefix or os.environ.get("LEDGER_TOPIC_PREFIX", "test.ledger")
    # LEDGER_RETENTION_MS: the topics' retention as the hub sees it (what its processed
    # markers are kept for, hub/retention.py); the soak tests make it seconds.
    retention = {"retention_ms": int(os.environ["LEDGER_RETENTION_MS"])} \
        if os.environ.get("LEDGER_RETENTION_MS") else {}
    return (TopicSpec(f"{prefix}.in", "ledger entries requested", KeyKind.CASE, partitions=6,
                      **retention),
            TopicSpec(f"{prefix}.out", "ledger entries recorded", KeyKind.CASE, partitions=6,
                      **retention))


def make_handler(out: TopicSpec):  # type: ignore[no-untyped-def]
    def record_entry(ctx: HandlerContext, envelope: Envelope[LedgerEntryRequested]) -> None:
        p = envelope.payload
        if p.permanent:
            raise PermanentFailure(f"entry {p.entry_no} can never be booked", rule_ids=("INV-3",))
        if p.fail_flag and os.path.exists(p.fail_flag):
            raise FlakyPeerError(f"peer down for entry {p.entry_no}")
        if p.fail_times:
            with _failures_lock:
                _failures[p.entry_no] += 1
                failed = _failures[p.entry_no]
            if failed <= p.fail_times:
                raise FlakyPeerError(f"flaky failure {failed} of entry {p.entry_no}")
        ctx.append_row(ledger_table, {"entry_no": p.entry_no, "amount": p.amount,
                                      "message_id": str(envelope.message_id),
                                      "worker": os.getpid()})
        ctx.emit(out, LedgerEntryRecorded(entry_no=p.entry_no, amount=p.amount), cause=envelope)

    return record_entry


def consumer(prefix: str | None = None, name: str = "ledger") -> ConsumerSpec:
    t_in, t_out = topics(prefix)
    return ConsumerSpec(
        name=name,
        topics=(t_in,),
        handlers={LedgerEntryRequested: make_handler(t_out)},
        description="Test ledger: one row and one event per entry",
        emits=((t_out, (LedgerEntryRecorded,)),),
    )


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine)


def wiring(settings: Settings) -> Wiring:
    engine = create_db_engine(settings.database_url.get_secret_value())
    return Wiring(engine=engine, consumers=[consumer()])


def workers(engine: Engine) -> Counter[int]:
    """How many entries each process booked."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ledger_table.c.worker))
        return Counter(r[0] for r in rows)


def entry_counts(engine: Engine) -> Counter[int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ledger_table.c.entry_no))
        return Counter(r[0] for r in rows)
