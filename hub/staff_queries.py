"""The staff's registrations and dead letters, each limited to the caller's entities.

Plain functions shared by the staff API (:mod:`hub.staff_api`) and any other front end
(a web console): each checks the caller's role (IAM-2) and entities (IAM-3), writes its
audit row, refusals included, and returns plain models. Roles (docs/identity.md):

- :func:`registrations`: the registration pipeline's answers to requests (done, rejected
  with the rule ID of each violation, held for confirmation), newest first: 契約担当,
  管理者 and 監査;
- :func:`dead_letters`: the dead letters of the caller's entities: 管理者 and 監査;
- :func:`replay_dead_letter`: one dead letter back on its topic, through
  :func:`hub.dlq.replay` as ``hub dlq replay`` does: 管理者 only, one audit row once
  Kafka has acknowledged it.

A dead letter's entity is its message's ``procuring_entity`` (read from the stored value
when it is kept by reference). One whose entity cannot be told (an unparseable message)
is shown to, and replayed by, only an installation-wide caller (entities ``*``): an
entity's own staff never see a message that may be another entity's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal, Protocol

import orjson
from fastapi import HTTPException
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import audit
from hub.claimcheck import H_CLAIM, stored_value
from hub.dlq import DeadLetter, read_dead_letters, replay
from hub.gateway.models import OutcomeRow
from hub.gateway.outcomes import STATUS_OF_TYPE
from hub.identity import Principal, Role, denied_entity, denied_role
from hub.settings import Settings
from schemas.rejection import RuleViolation
from schemas.wire import header

__all__ = [
    "DEAD_LETTER_READERS",
    "REGISTRATION_READERS",
    "REPLAYERS",
    "DeadLetterOut",
    "DeadLetterSource",
    "KafkaDeadLetters",
    "RegistrationOut",
    "dead_letter_entity",
    "dead_letters",
    "registrations",
    "replay_dead_letter",
]

REGISTRATION_READERS = frozenset({Role.CONTRACT_OFFICER, Role.ADMIN, Role.AUDITOR})
DEAD_LETTER_READERS = frozenset({Role.ADMIN, Role.AUDITOR})
REPLAYERS = frozenset({Role.ADMIN})

Status = Literal["done", "rejected", "needs-confirmation"]


class RegistrationOut(BaseModel):
    request_id: str
    entity: str
    message_type: str
    status: Status
    received_at: datetime
    domain: str | None
    user_id: str | None
    company_id: str | None
    rule_ids: list[str]
    violations: list[RuleViolation]


class DeadLetterOut(BaseModel):
    id: str
    """``<dead-letter topic>:<partition>:<offset>``: what the replay route takes."""
    ref: str
    entity: str | None
    """``None``: the message names none (shown to installation-wide callers only)."""
    topic: str
    consumer: str
    reason: str
    rule_ids: list[str]
    at: str
    message_type: str | None
    text_ja: str
    text_en: str


class DeadLetterSource(Protocol):
    """Where the dead letters are: Kafka's dead-letter topics (:class:`KafkaDeadLetters`)."""

    def topics(self) -> list[str]: ...

    async def read(self, topics: Sequence[str] | None = None) -> list[DeadLetter]:
        """Every dead letter of ``topics`` (of all :meth:`topics` with ``None``)."""

    async def replay(self, letters: Sequence[DeadLetter],
                     on_sent: Callable[[DeadLetter], object]) -> int: ...


class KafkaDeadLetters:
    """The dead-letter topics ``topics`` (default: every topic's), as ``hub dlq`` reads them."""

    def __init__(self, settings: Settings, topics: Iterable[str] | None = None) -> None:
        self.settings = settings
        self._topics = tuple(topics) if topics is not None else None

    def topics(self) -> list[str]:
        if self._topics is not None:
            return list(self._topics)
        from hub.plugins import all_topics

        return [t.dlq for t in all_topics()]

    async def read(self, topics: Sequence[str] | None = None) -> list[DeadLetter]:
        return await read_dead_letters(self.settings, list(topics or self.topics()))

    async def replay(self, letters: Sequence[DeadLetter],
                     on_sent: Callable[[DeadLetter], object]) -> int:
        return await replay(self.settings, letters, on_sent=on_sent)


def _check(engine: Engine, who: Principal, needed: frozenset[Role], action: str, *,
           target: str, client: str, at: datetime) -> Role:
    """The role the caller acts in; a refusal (IAM-2) is written to the trail first."""
    held = sorted(who.roles & needed)
    if not held:
        audit.record_alone(engine, actor=who.who, actor_kind=who.kind, action=action,
                           target=target, at=at, entity=_scope_text(who), client=client,
                           outcome="denied", detail="role")
        raise denied_role(needed)
    return held[0]


def _scope_text(who: Principal) -> str:
    scope = who.entity_filter()
    return ",".join(sorted(scope)) if scope is not None else "*"


def registrations(engine: Engine, who: Principal, *, client: str, at: datetime,
                  since: datetime | None = None, limit: int = 100) -> list[RegistrationOut]:
    """The registration answers of the caller's entities, newest first."""
    role = _check(engine, who, REGISTRATION_READERS, "registrations.list",
                  target="registrations", client=client, at=at)
    query = select(OutcomeRow)
    scope = who.entity_filter()
    if scope is not None:
        query = query.where(col(OutcomeRow.procuring_entity).in_(sorted(scope)))
    if since is not None:
        query = query.where(col(OutcomeRow.received_at) >= since)
    with Session(engine) as db:
        rows = db.exec(query.order_by(col(OutcomeRow.received_at).desc(),
                                      col(OutcomeRow.request_id)).limit(limit)).all()
        out = [_registration(r) for r in rows]
    audit.record_alone(engine, actor=who.who, actor_kind=who.kind, action="registrations.list",
                       target="registrations", at=at, role=role.value,
                       entity=_scope_text(who), client=client, detail=f"{len(out)} row(s)")
    return out


def _registration(row: OutcomeRow) -> RegistrationOut:
    payload = row.payload
    violations = [RuleViolation.model_validate(v) for v in payload.get("violations", ())]
    if "reason" in payload:  # REG-11: why it is held
        violations.append(RuleViolation.model_validate(payload["reason"]))
    return RegistrationOut(
        request_id=row.request_id, entity=row.procuring_entity, message_type=row.message_type,
        status=STATUS_OF_TYPE[row.message_type],  # type: ignore[arg-type]
        received_at=row.received_at,
        domain=payload.get("domain"), user_id=payload.get("user_id"),
        company_id=payload.get("company_id"), rule_ids=[v.rule_id for v in violations],
        violations=violations)


def dead_letter_entity(letter: DeadLetter, engine: Engine | None = None) -> str | None:
    """The procuring entity the dead letter's message names; ``None`` when it cannot be
    told (not JSON, no entity). A value kept by reference is read from ``engine``."""
    value = letter.value or b""
    ref = header(letter.headers, H_CLAIM)
    if ref is not None and engine is not None:
        value = stored_value(engine, ref) or b""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    entity = parsed.get("procuring_entity") if isinstance(parsed, dict) else None
    return str(entity) if isinstance(entity, str) and entity else None


def _visible(who: Principal, entity: str | None) -> bool:
    return who.entity_filter() is None if entity is None else who.covers(entity)


def letter_id(letter: DeadLetter) -> str:
    return f"{letter.dlq_topic}:{letter.partition}:{letter.offset}"


def _out(letter: DeadLetter, entity: str | None) -> DeadLetterOut:
    return DeadLetterOut(
        id=letter_id(letter), ref=letter.ref, entity=entity, topic=letter.original_topic,
        consumer=letter.context("consumer"), reason=letter.context("reason"),
        rule_ids=[r for r in letter.context("rule-ids").split(",") if r],
        at=letter.context("at"), message_type=header(letter.headers, "x-message-type"),
        text_ja=letter.context("text-ja"), text_en=letter.context("text-en"))


async def dead_letters(engine: Engine, who: Principal, source: DeadLetterSource, *,
                       client: str, at: datetime) -> list[DeadLetterOut]:
    """The dead letters the caller may see (their entities'), oldest first."""
    role = await asyncio.to_thread(_check, engine, who, DEAD_LETTER_READERS, "dlq.list",
                                   target="dead-letters", client=client, at=at)
    letters = await source.read()

    def visible() -> list[DeadLetterOut]:  # the database: a value kept by reference
        out = []
        for letter in letters:
            entity = dead_letter_entity(letter, engine)
            if _visible(who, entity):
                out.append(_out(letter, entity))
        audit.record_alone(engine, actor=who.who, actor_kind=who.kind, action="dlq.list",
                           target="dead-letters", at=at, role=role.value,
                           entity=_scope_text(who), client=client,
                           detail=f"{len(out)} dead letter(s)")
        return out

    return await asyncio.to_thread(visible)


_NOT_FOUND = RuleViolation(
    rule_id="OPS-3",
    message_ja="指定されたデッドレターは見つかりません（すでに保存期間を過ぎたか、IDが誤っています）。",
    message_en="No such dead letter: it is past its retention or the id is wrong.",
    next_step_ja="GET /staff/dead-letters で一覧を確かめ、表示された id を指定してください。",
    next_step_en="List them with GET /staff/dead-letters and give an id it shows.")


async def replay_dead_letter(engine: Engine, who: Principal, source: DeadLetterSource,
                             dead_letter_id: str, *, client: str,
                             clock: Callable[[], datetime]) -> DeadLetterOut:
    """Send one dead letter back to its topic (管理者 of its entity); one audit row,
    written once Kafka has acknowledged it. Another entity's dead letter: 403 (IAM-3)."""
    role = await asyncio.to_thread(_check, engine, who, REPLAYERS, "dlq.replay",
                                   target=dead_letter_id, client=client, at=clock())
    topic = dead_letter_id.rsplit(":", 2)[0]
    # Only the named topic is read, and only one of the hub's dead-letter topics.
    letters = await source.read([topic]) if topic in source.topics() else []
    letter = next((d for d in letters if letter_id(d) == dead_letter_id), None)
    if letter is None:
        await asyncio.to_thread(
            audit.record_alone, engine, actor=who.who, actor_kind=who.kind,
            action="dlq.replay", target=dead_letter_id, at=clock(), role=role.value,
            entity=_scope_text(who), client=client, outcome="refused", detail="not found")
        raise HTTPException(404, detail={"violations": [_NOT_FOUND.model_dump()]})
    entity = await asyncio.to_thread(dead_letter_entity, letter, engine)
    if not _visible(who, entity):
        await asyncio.to_thread(
            audit.record_alone, engine, actor=who.who, actor_kind=who.kind,
            action="dlq.replay", target=letter.ref, at=clock(), role=role.value,
            entity=entity or "", client=client, outcome="denied", detail="entity")
        raise denied_entity(entity or "（不明 / unknown）", what="dead-letter")

    def sent(done: DeadLetter) -> None:
        with Session(engine) as tx, tx.begin():  # a step's row: durable, as the CLI's
            audit.record(tx, actor=who.who, actor_kind=who.kind, action="dlq.replay",
                         target=done.ref, at=clock(), role=role.value, entity=entity or "",
                         client=client, detail=done.original_topic)

    await source.replay([letter], sent)
    return _out(letter, entity)
