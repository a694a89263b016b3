"""FastStream on aiokafka: one batch subscriber per consumer, and the AsyncAPI document.

Records reach the :class:`~hub.processing.Processor` as they are (no parsing by
FastStream, so a record with broken bytes or headers cannot crash the consumer);
offsets are committed explicitly, after the database commit of their effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Union

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaAckableMessage
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from faststream.specification import AsyncAPI

from hub import metrics
from hub.claimcheck import is_pointer
from hub.consumers import ConsumerSpec
from hub.delivery import Delivery
from hub.processing import Processor
from hub.settings import KafkaSettings
from schemas.envelope import Envelope, envelope_class

__all__ = ["ConsumerRuntime", "asyncapi", "build_broker"]

log = logging.getLogger(__name__)


def _security(kafka: KafkaSettings) -> BaseSecurity | None:
    ctx = kafka.ssl_context()
    if not kafka.security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=ctx) if ctx else None
    user = kafka.sasl_username or ""
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    cls = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256,
           "SCRAM-SHA-512": SASLScram512}[kafka.sasl_mechanism]
    return cls(user, password, ssl_context=ctx, use_ssl=ctx is not None)


def build_broker(kafka: KafkaSettings, *, graceful_timeout: float = 30.0) -> KafkaBroker:
    # A list: FastStream takes a string as one host, so "k1:9092,k2:9092" would not resolve.
    servers = [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()]
    return KafkaBroker(
        servers,
        client_id=kafka.client_id,
        security=_security(kafka),
        graceful_timeout=graceful_timeout,
        allow_auto_create_topics=False,
        logger=logging.getLogger("hub.kafka"),
        log_level=logging.DEBUG,
        description="Japanese municipal e-procurement integration hub",
    )


async def _raw_parser(records: tuple[Any, ...], _original: Any) -> KafkaAckableMessage:
    return KafkaAckableMessage(
        body=list(records), headers={}, batch_headers=[], raw_message=records,
        consumer=None, message_id=f"{records[0].offset}-{records[-1].offset}",
        correlation_id="",
    )


async def _raw_decoder(message: Any, _original: Any) -> Any:
    return message.body


def _waiting_poll(subscriber: Any) -> Callable[[Any], Any]:
    """The batch subscriber's poll without FastStream's sleep after an empty one.

    aiokafka's ``getmany`` returns as soon as records arrive, so the poll may wait long
    (``batch_timeout_ms``) at no cost in latency; FastStream's own loop sleeps as long
    again after an empty poll, during which arriving records wait. Set on the instance:
    FastStream's consume loop calls ``self.get_msg(consumer)``.
    """
    max_records = subscriber.max_records
    timeout_ms = subscriber.batch_timeout_ms

    async def get_msg(consumer: Any) -> tuple[Any, ...]:
        found = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return tuple(chain.from_iterable(found.values()))

    return get_msg


class ConsumerRuntime:
    """One consumer group in this process: subscriber, processor, offset commits, lag."""

    def __init__(self, spec: ConsumerSpec, processor: Processor, kafka: KafkaSettings,
                 on_committed: Callable[[], None]) -> None:
        self.spec = spec
        self.processor = processor
        self.group_id = f"{kafka.group_prefix}.{spec.name}"
        self.healthy = True
        self.stopping = False
        self._kafka = kafka
        self._on_committed = on_committed
        self._lag_at = 0.0
        self._committing: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self.subscriber: Any = None
        self.paused = False
        """Paused by the control API: its records wait on their topic (:meth:`pause`)."""
        self._paused_metric = metrics.CONSUMER_PAUSED.labels(spec.name)
        self._paused_metric.set(0)
        self.lag: dict[tuple[str, int], int] = {}
        """Records behind the end of each assigned partition, at the last measure."""

    def subscribe(self, broker: KafkaBroker) -> None:
        subscriber = broker.subscriber(
            *[t.name for t in self.spec.topics],
            group_id=self.group_id,
            batch=True,
            max_records=self.spec.batch_max_records or self._kafka.batch_max_records,
            batch_timeout_ms=self._kafka.batch_timeout_ms,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._kafka.fetch_max_wait_ms,
            parser=_raw_parser,
            decoder=_raw_decoder,
            title=f"{self.spec.name}:batch",
            description=self.spec.description,
            include_in_schema=False,
        )

        async def on_batch(msg: KafkaMessage) -> None:
            await self.accept(msg.raw_message)

        subscriber(on_batch)
        subscriber.get_msg = _waiting_poll(subscriber)  # type: ignore[method-assign,assignment]
        self.subscriber = subscriber

    async def accept(self, records: Sequence[Any]) -> None:
        """A fetched batch (FastStream's callback), handled in order after the one before.

        The records are read (decoded) at once, while the batch before is still in its
        database transaction in a worker thread; then that batch is awaited and this one
        started, and the callback returns so that FastStream fetches the next batch
        meanwhile. So at most two batches are in the process, one being read and one being
        handled, never two handled at once. While stopping, each batch is handled and its
        offsets committed before the callback returns. A batch that failed (the database
        down while stopping) fails every later one too: nothing after it is handled or
        committed by this process.
        """
        if self.paused:
            self._hold(records)
            return
        if self._failed is not None:
            raise RuntimeError(f"consumer {self.spec.name}: an earlier batch failed; "
                               "restart to read again from the last committed offset"
                               ) from self._failed
        deliveries = [Delivery.from_record(r) for r in records]
        for d in deliveries:
            if not is_pointer(d.headers):  # resolved first, in the processor's retry loop
                _ = d.decoded
        await self.settle()
        if self.paused:  # paused while this batch waited for the one before
            self._hold(records)
            return
        task = asyncio.create_task(self._handle_or_fail(records, deliveries))
        if self.stopping:
            await task
        else:
            self._in_flight = task

    async def pause(self) -> None:
        """Stop handling: the consumer stops fetching its partitions and the batch in flight
        ends (handled and committed) before this returns. From then on nothing is handled;
        a batch fetched before the pause, or from partitions assigned later, is put back
        (each partition sought back to its first record), so its records wait on the topic.
        Nothing is dropped or committed past what was handled."""
        self.paused = True
        self._paused_metric.set(1)
        consumer = self._consumer()
        if consumer is not None:
            with contextlib.suppress(KafkaError, AssertionError):
                consumer.pause(*consumer.assignment())
        await self.settle()
        if self._committing is not None:
            await self._committing

    def resume(self) -> None:
        """Handle again, from the first record not handled."""
        self.paused = False
        self._paused_metric.set(0)
        consumer = self._consumer()
        if consumer is not None:
            with contextlib.suppress(KafkaError, AssertionError):
                consumer.resume(*consumer.paused())

    def _consumer(self) -> Any:
        return getattr(self.subscriber, "consumer", None) if self.subscriber else None

    def _hold(self, records: Sequence[Any]) -> None:
        consumer = self._consumer()
        if consumer is None:  # no consumer, no fetched records to put back
            return
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for tp, offset in first.items():
            with contextlib.suppress(KafkaError, AssertionError):  # revoked meanwhile
                consumer.pause(tp)
                consumer.seek(tp, offset)

    async def settle(self) -> None:
        """Wait for the batch being handled, if any (raises what it raised).

        The batch stays in flight until it has ended, whoever waits for it: Hub.stop may
        wait while FastStream hands over the next batch, and that batch must wait too.
        """
        task = self._in_flight
        if task is not None:
            try:
                await task
            finally:
                if task.done() and self._in_flight is task:
                    self._in_flight = None

    async def _handle_or_fail(self, records: Sequence[Any], deliveries: list[Delivery]) -> None:
        try:
            await self.handle(records, deliveries)
        except BaseException as exc:
            self._failed = exc
            raise

    async def handle(self, records: Sequence[Any],
                     deliveries: list[Delivery] | None = None) -> None:
        if deliveries is None:
            deliveries = [Delivery.from_record(r) for r in records]
        for topic, count in Counter(r.topic for r in records).items():
            metrics.CONSUMED.labels(self.spec.name, topic).inc(count)
        backoff = 0.5
        while True:
            try:
                await self.processor.process(deliveries)
                break
            except Exception:
                self.healthy = False
                log.exception("consumer %s: the database is failing; the batch waits",
                              self.spec.name)
                if self.stopping:
                    raise
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)  # tried soon after the database is back
        self.healthy = True
        self._on_committed()
        # The effects are committed; the offsets follow in the background, in order, while
        # the next batch is read. A crash before they land only re-delivers deduplicated work.
        if self._committing is not None:
            await self._committing
        self._committing = asyncio.create_task(self._commit(records))
        if self.stopping:  # the consumer closes once this callback returns: commit first
            await self.finish_commit()
            return
        await self._update_lag()

    async def finish_commit(self) -> None:
        """Wait for the offset commit in flight, if any, for at most ``stop_commit_timeout_s``.

        Stopping calls this while the consumer is still open, because aiokafka (0.14) never
        ends a commit that is in flight while its consumer stops: the closed connection
        marks the group coordinator dead, a closing coordinator is not looked up again, and
        the commit retries "coordinator not available" for ever, so stopping would never
        end. A commit given up is only a redelivery to the next owner: the records' effects
        are committed and deduplicated.
        """
        task, self._committing = self._committing, None
        if task is None:
            return
        timeout_s = self._kafka.stop_commit_timeout_s
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            await asyncio.wait({task})
            log.warning("consumer %s: the last offset commit did not end within %g s; "
                        "given up, its records will be read again and deduplicated",
                        self.spec.name, timeout_s)
        elif not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("consumer %s: the last offset commit failed (%r); its records "
                        "will be read again and deduplicated", self.spec.name, exc)

    async def drain(self) -> None:
        """Wait for the batch in flight and the last offset commit (at shutdown)."""
        with contextlib.suppress(Exception):
            await self.settle()
        await self.finish_commit()

    async def _commit(self, records: Sequence[Any]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        consumer = self.subscriber.consumer
        try:
            await consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # Revoked in a rebalance: the new owner re-reads these; their effects are deduplicated.
            log.warning("consumer %s: offsets not committed (%s); they will be redelivered",
                        self.spec.name, type(exc).__name__)

    async def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < 1.0:
            return
        self._lag_at = now
        consumer = self.subscriber.consumer
        with contextlib.suppress(KafkaError, AssertionError):
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    continue
                position = await consumer.position(tp)
                self.lag[(tp.topic, tp.partition)] = max(0, high - position)
                metrics.CONSUMER_LAG.labels(self.spec.name, tp.topic, tp.partition).set(
                    max(0, high - position))


def asyncapi(consumers: Sequence[ConsumerSpec], *, version: str) -> AsyncAPI:
    """The AsyncAPI document of the hub: what each consumer reads and publishes."""
    broker = build_broker(KafkaSettings())
    for spec in consumers:
        types = tuple(envelope_class(t) for t in spec.handlers) or (Envelope[Any],)
        union: Any = Union[types] if len(types) > 1 else types[0]  # noqa: UP007

        async def documented(body: Any) -> None:
            raise RuntimeError("documentation only")

        documented.__annotations__ = {"body": union, "return": None}
        broker.subscriber(*[t.name for t in spec.topics], group_id=spec.name, title=spec.name,
                          description=spec.description)(documented)
        for topic, payloads in spec.emits:
            schema: Any = Union[tuple(envelope_class(p) for p in payloads)]  # noqa: UP007
            broker.publisher(topic.name, title=f"{spec.name}->{topic.name}",
                             description=topic.description, schema=schema)
    return AsyncAPI(broker, title="Procurement hub", version=version,
                    description="Canonical procurement messages on Kafka (電子入札・電子契約)")
