"""Prometheus metrics of the hub (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMED",
    "CONSUMER_LAG",
    "DEAD_LETTERED",
    "HANDLER_LATENCY",
    "MESSAGE_AGE",
    "OUTBOX_PENDING",
    "OUTBOX_PUBLISHED",
    "PROCESSED",
    "RETRIED",
]

CONSUMED = Counter("hub_messages_consumed", "Records read from Kafka", ["consumer", "topic"])
PROCESSED = Counter(
    "hub_messages_processed",
    "Records handled, by outcome (done, duplicate, ignored)",
    ["consumer", "outcome"],
)
RETRIED = Counter("hub_messages_retried", "Transient failures scheduled for redelivery",
                  ["consumer"])
DEAD_LETTERED = Counter("hub_messages_dead_lettered", "Records sent to a dead-letter topic",
                        ["consumer", "reason"])
CONSUMER_LAG = Gauge("hub_consumer_lag", "Records behind the partition's end",
                     ["consumer", "topic", "partition"])
HANDLER_LATENCY = Histogram(
    "hub_handler_latency_seconds",
    "Time to handle one batch of records in one transaction",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MESSAGE_AGE = Histogram(
    "hub_message_age_seconds",
    "From a message's occurred_at to the commit of its effects",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OUTBOX_PUBLISHED = Counter("hub_outbox_published", "Outbox records acknowledged by Kafka")
OUTBOX_PENDING = Gauge("hub_outbox_pending", "Outbox records waiting (0 when drained)")
