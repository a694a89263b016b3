"""Dead-letter topics: what could not be processed, why, and how to send it back.

Every topic ``T`` has a twin ``T.dlq``. A dead-lettered record keeps the original
key, value and headers, and adds context headers (``x-dlq-*``): the original
topic, partition and offset, the consumer, the reason, the error class and
message, the attempts with their history, the rule IDs, and what a person can do
(Japanese and English). ``hub dlq list|show|replay`` read and replay them; a
replayed record carries ``x-hub-replay-of`` so that a consumer that dead-lettered
it processes it again, once. A dead letter too large for a Kafka record is stored by
reference (hub/claimcheck.py): its record is a pointer, listed with
``stored_by_reference``, and replayed as it is (the consumer resolves it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hub.claimcheck import H_CLAIM, H_CLAIM_BYTES
from hub.delivery import H_REPLAY, Delivery
from hub.logs import redact_text
from hub.settings import Settings
from schemas.sealed import SEALED_PREFIX
from schemas.topics import DLQ_SUFFIX
from schemas.wire import Headers, header

__all__ = ["DeadLetter", "dead_letter_headers", "partitions_of", "read_dead_letters",
           "redact_value", "replay"]

H = "x-dlq-"
MAX_ERROR_TEXT = 1000
REDACTED = "[redacted]"

_SENSITIVE_KEY = re.compile(r"(?:^|_)(?:auth_key|password|passwd|secret|token|pin)$",
                            re.IGNORECASE)
_SENSITIVE_PAIR = re.compile(
    r'("(?:[^"\\]*_)?(?:auth_key|password|passwd|secret|token|pin)"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE)


def _redact(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: REDACTED if (_SENSITIVE_KEY.search(str(k)) and v not in (None, ""))
                else _redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact(v) for v in obj]
    if isinstance(obj, str) and obj.startswith(SEALED_PREFIX):
        return REDACTED
    return obj


def redact_value(text: str) -> str:
    """A record value as ``hub dlq show`` prints it: credentials (the 認証キー, passwords,
    tokens, PINs; sealed or in clear) replaced by ``[redacted]`` (DAT-3). Text that is
    not JSON is redacted pair by pair."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return _SENSITIVE_PAIR.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    return json.dumps(_redact(parsed), ensure_ascii=False)


def dead_letter_headers(
    delivery: Delivery,
    *,
    consumer: str,
    reason: str,
    error_class: str,
    error_message: str,
    attempts: int,
    rule_ids: Sequence[str] = (),
    text_ja: str = "",
    text_en: str = "",
    history: Sequence[dict[str, Any]] = (),
    at: str,
) -> Headers:
    """The original headers (without earlier ``x-dlq-*``) plus this dead letter's context."""
    kept = [(k, v) for k, v in delivery.headers if not k.startswith(H) and k != H_REPLAY]
    context = {
        "original-topic": delivery.topic,
        "original-partition": str(delivery.partition),
        "original-offset": str(delivery.offset),
        "consumer": consumer,
        "reason": reason,
        "error-class": error_class,
        "error-message": redact_text(error_message)[:MAX_ERROR_TEXT],
        "attempts": str(attempts),
        "rule-ids": ",".join(rule_ids),
        "text-ja": text_ja,
        "text-en": text_en,
        "history": json.dumps(list(history), ensure_ascii=False),
        "at": at,
    }
    return kept + [(H + k, v.encode()) for k, v in context.items()]


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, as the tools show it."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def context(self, name: str) -> str:
        return header(self.headers, H + name) or ""

    @property
    def original_topic(self) -> str:
        return self.context("original-topic") or self.dlq_topic.removesuffix(DLQ_SUFFIX)

    @property
    def ref(self) -> str:
        return f"{self.dlq_topic}/{self.partition}/{self.offset}"

    def summary(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "original": f"{self.original_topic}/{self.context('original-partition')}/"
                        f"{self.context('original-offset')}",
            "consumer": self.context("consumer"),
            "reason": self.context("reason"),
            "error": f"{self.context('error-class')}: {self.context('error-message')}",
            "attempts": self.context("attempts"),
            "rule_ids": [r for r in self.context("rule-ids").split(",") if r],
            "message_type": header(self.headers, "x-message-type"),
            "message_id": header(self.headers, "x-message-id"),
            "at": self.context("at"),
            **self._claim_check(),
        }

    def _claim_check(self) -> dict[str, Any]:
        """A dead letter too large for Kafka is a pointer to its value (hub/claimcheck.py)."""
        ref = header(self.headers, H_CLAIM)
        if ref is None:
            return {}
        size = header(self.headers, H_CLAIM_BYTES) or "0"
        return {"stored_by_reference": {"ref": ref, "bytes": int(size) if size.isdigit() else 0,
                                        "table": "hub_claim_check"}}

    def details(self) -> dict[str, Any]:
        out = self.summary()
        out["text_ja"] = self.context("text-ja")
        out["text_en"] = self.context("text-en")
        out["history"] = json.loads(self.context("history") or "[]")
        out["value"] = redact_value((self.value or b"").decode("utf-8", "replace"))[:4000]
        out["headers"] = {k: v.decode("utf-8", "replace") for k, v in self.headers
                          if not k.startswith(H)}
        return out


async def partitions_of(consumer: AIOKafkaConsumer,
                        topics: Sequence[str]) -> list[TopicPartition]:
    """The partitions of ``topics`` (a consumer without subscription knows none by itself)."""
    client = consumer._client  # aiokafka has no public call that loads metadata for a topic
    for topic in topics:
        client.add_topic(topic)
    await client.force_metadata_update()
    return [TopicPartition(t, p) for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())]


async def read_dead_letters(settings: Settings, topics: Sequence[str],
                            timeout_s: float = 5.0) -> list[DeadLetter]:
    """Everything currently in the given dead-letter topics (no consumer group, no commit)."""
    consumer = AIOKafkaConsumer(**settings.kafka.aiokafka_kwargs(), enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    out: list[DeadLetter] = []
    try:
        partitions = await partitions_of(consumer, topics)
        if not partitions:
            return out
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for tp, records in batch.items():
                out.extend(DeadLetter(r.topic, r.partition, r.offset, r.key, r.value,
                                      [(k, bytes(v)) for k, v in r.headers or ()])
                           for r in records)
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return sorted(out, key=lambda d: (d.dlq_topic, d.partition, d.offset))


async def replay(settings: Settings, letters: Sequence[DeadLetter],
                 on_sent: Callable[[DeadLetter], object] | None = None) -> int:
    """Send dead letters back to their original topics, marked as replays; ``on_sent``
    runs after each one is acknowledged (the command line's audit row)."""
    producer = AIOKafkaProducer(**settings.kafka.aiokafka_kwargs(), acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for letter in letters:
            headers = [(k, v) for k, v in letter.headers if not k.startswith(H)]
            headers.append((H_REPLAY, letter.ref.encode()))
            await producer.send_and_wait(letter.original_topic, value=letter.value,
                                         key=letter.key, headers=headers)
            if on_sent is not None:
                on_sent(letter)
    finally:
        await producer.stop()
    return len(letters)
