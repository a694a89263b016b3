"""Builders and Kafka helpers for the registration pipeline through the real hub.

Commands are built relative to the real clock, because the hub decides at processing
time (PIN-2: the card was authenticated minutes ago; REG-6: the card is valid now),
while WIN-1 is judged at the time the person acted (the envelope's occurred-at), which
:func:`last_service_time` picks inside the entity's service window. Each builder takes
the user ID, serial and mail address so that tests sharing the real topics stay apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from stdnum.jp import cn

from hub.dlq import partitions_of
from pipelines.registration.policy import default_policy_book, is_service_time
from schemas.envelope import JST, Envelope, new_envelope
from schemas.qualification import QualificationRecord, QualificationUpdated
from schemas.registration import (
    CardFacts,
    CardRegistrationRequested,
    CardRenewalRequested,
    ContactChangeRequested,
    ContactInput,
    Domain,
    SystemKind,
)
from schemas.registry import Payload
from schemas.wire import WireError, decode

__all__ = [
    "ISSUER",
    "TRADE_NAME",
    "EventTap",
    "card",
    "change",
    "command",
    "contact",
    "corporate_number",
    "last_service_time",
    "qualification",
    "register",
    "renew",
    "skip_history",
    "user_id_for",
]

ISSUER = "OU=CoreCA,O=eJapan2 Tech Center,C=JP"
TRADE_NAME = "北東組株式会社"
CONTRACTOR = "北東 次郎"
ADDRESS = "北東市中央町2丁目3番4号"


def user_id_for(unique: str, n: int = 0) -> str:
    """A 10-digit ユーザID of the Saitama joint system, distinct per test (REG-3 scheme)."""
    return f"{(int(unique, 16) * 10 + n) % 10**10:010d}"


def last_service_time(entity: str, before: datetime | None = None) -> datetime:
    """The latest moment before ``before`` (default: now) inside the entity's window (WIN-1).

    The person acted then; tests do not depend on the weekday or holiday they run on.
    """
    policy = default_policy_book().get(entity, SystemKind.E_BID)
    assert policy is not None, f"{entity}: not in the policy book"
    at = (before or datetime.now(JST)).astimezone(JST).replace(minute=0, second=0,
                                                               microsecond=0)
    for _ in range(24 * 30):
        if is_service_time(policy, at):
            return at
        at -= timedelta(hours=1)
    raise AssertionError(f"{entity}: no service hour in the last 30 days")


def qualification(entity: str, user_id: str, *, domain: Domain = Domain.WORKS,
                  trade_name: str = TRADE_NAME,
                  corporate_number: str = "5835678256246") -> QualificationUpdated:
    """One row of 資格審査情報 (REG-3, REG-5: the card must bear 契約者's name)."""
    return QualificationUpdated(procuring_entity=entity, domain=domain, rows=(
        QualificationRecord(user_id=user_id, trade_name=trade_name, postal_code="123-0000",
                            head_office_address=ADDRESS, representative_name="日立 二郎",
                            representative_title="代表取締役社長",
                            contractor_name=CONTRACTOR, corporate_number=corporate_number),))


def corporate_number(n: int) -> str:
    """A valid 法人番号 (check digit first) for company number ``n``."""
    body = f"{n:012d}"
    return cn.calc_check_digit(body) + body


def card(serial: str, *, authenticated: timedelta = timedelta(minutes=1),
           issued_days_ago: int = 300) -> CardFacts:
    """A card valid today, its PIN accepted ``authenticated`` ago (PIN-2, RNW-6).

    The validity is anchored to today's date, so that the same card read again later
    in a test has the same facts; only the authentication time moves.
    """
    now = datetime.now(JST)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    issued = today - timedelta(days=issued_days_ago)
    return CardFacts(issuer=ISSUER, serial=serial, holder_name=CONTRACTOR,
                     holder_address=ADDRESS, holder_organization=TRADE_NAME,
                     not_before=issued, not_after=issued + timedelta(days=5 * 365),
                     authenticated_at=now - authenticated)


def contact(email: str, *, confirmation: str | None = None) -> ContactInput:
    """連絡先 as typed; the e-mail address typed twice (REG-7)."""
    return ContactInput(contact_name="営業部", postal_code="123-0000", address=ADDRESS,
                        person_name="日立 次郎", phone="044-812-7358", fax="044-812-8681",
                        email=email, email_confirmation=confirmation or email)


def register(user_id: str, the_card: CardFacts, email: str, *,
             entity: str = "saitama-pref", representative: bool = True,
             confirmation: str | None = None,
             trade_name: str = TRADE_NAME) -> CardRegistrationRequested:
    """利用者登録 at one entity; the first registration gives 代表窓口 (REG-7, REG-8)."""
    return CardRegistrationRequested(
        procuring_entity=entity, system=SystemKind.E_BID, domain=Domain.WORKS, user_id=user_id,
        trade_name=trade_name, password_verified=True, card=the_card, department_name="営業部",
        representative_contact=contact(f"rep-{email}") if representative else None,
        card_department_contact=contact(email, confirmation=confirmation))


def change(user_id: str, the_card: CardFacts, email: str, *,
           entity: str = "saitama-pref", to_others: bool = False) -> ContactChangeRequested:
    """利用者変更 of the ICカード利用部署 contact (CHG-1, CHG-3 with ``to_others``)."""
    return ContactChangeRequested(
        procuring_entity=entity, system=SystemKind.E_BID, domain=Domain.WORKS, user_id=user_id,
        card=the_card, card_department_contact=contact(email),
        apply_to_other_entities=to_others)


def renew(user_id: str, old: CardFacts, new: CardFacts, *, entity: str = "saitama-pref",
          to_others: bool = False) -> CardRenewalRequested:
    """ICカード更新 from ``old`` to ``new`` (RNW-1 … RNW-9)."""
    return CardRenewalRequested(
        procuring_entity=entity, system=SystemKind.E_BID, domain=Domain.WORKS, user_id=user_id,
        old_card=old, new_card=new, apply_to_other_entities=to_others)


def command(payload: Payload, *, acted_at: datetime, producer: str = "gateway") -> Envelope[Any]:
    """The envelope the gateway would publish: one case per user ID, acted at ``acted_at``."""
    entity = getattr(payload, "procuring_entity", "saitama-pref")
    case = getattr(payload, "user_id", None) or entity
    return new_envelope(payload, correlation_id=f"user-{case}", procuring_entity=entity,
                        producer=producer, occurred_at=acted_at)


async def skip_history(bootstrap: str, groups: Sequence[str], topics: Sequence[str]) -> None:
    """Start fresh consumer groups at the end of shared topics.

    A new group reads from the earliest offset; on topics other tests share, that would
    replay their commands into this test's database. Committing the end offsets first
    makes the hub's consumers see only what this test sends.
    """
    for group in groups:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, topics)
            end = await consumer.end_offsets(parts)
            consumer.assign(parts)
            await consumer.commit(dict(end))
        finally:
            await consumer.stop()


class EventTap:
    """Reads a topic from "now" on and keeps every canonical message decoded from it."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                          enable_auto_commit=False)
        self._topics = topics
        self.seen: list[tuple[str, Envelope[Any]]] = []

    async def start(self) -> None:
        await self._consumer.start()
        parts = await partitions_of(self._consumer, self._topics)
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end now, before the test publishes anything
            await self._consumer.position(tp)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _drain(self) -> None:
        batch = await self._consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for r in records:
                try:
                    self.seen.append((r.topic, decode(r.value, r.headers)))
                except WireError:
                    continue  # someone else's poison test; not ours to read

    async def wait(self, match: Callable[[Envelope[Any]], bool], count: int = 1, *,
                   timeout_s: float = 30.0, what: str = "events") -> list[Envelope[Any]]:
        """The matching messages seen so far, once there are at least ``count``."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for _, e in self.seen if match(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}: "
                                     f"{len(found)} of {count}")
            await self._drain()
            await asyncio.sleep(0)

    async def settle(self, seconds: float) -> None:
        """Keep reading for ``seconds`` (so that a message too many would show)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._drain()

    def caused_by(self, cause: Envelope[Any]) -> list[Envelope[Any]]:
        return [e for _, e in self.seen if e.causation_id == cause.message_id]
