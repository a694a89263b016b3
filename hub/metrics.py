"""Prometheus metrics of the hub (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CLAIM_CHECKED",
    "CONSUMED",
    "CONSUMER_LAG",
    "CONSUMER_PAUSED",
    "DEAD_LETTERED",
    "HANDLER_LATENCY",
    "MESSAGE_AGE",
    "OUTBOX_PENDING",
    "OUTBOX_PUBLISHED",
    "OUTBOX_SEND_FAILURES",
    "PROCESSED",
    "PRUNED",
    "RETRIED",
    "TABLE_ROWS",
    "TASK_RESTARTS",
    "TASK_UP",
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
CONSUMER_PAUSED = Gauge(
    "hub_consumer_paused",
    "1 while the control API holds the consumer paused (its records wait on their topic), "
    "else 0; a connector's consumer is named connector.<name>", ["consumer"])
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
OUTBOX_SEND_FAILURES = Counter(
    "hub_outbox_send_failures", "Relay sends that failed and wait to be tried again",
    ["topic", "error"])
CLAIM_CHECKED = Counter("hub_claim_checked",
                        "Records too large for Kafka, stored by reference (hub_claim_check)",
                        ["topic"])
TASK_UP = Gauge("hub_task_up", "1 while a background task of the hub runs, 0 while it is down",
                ["task"])
TASK_RESTARTS = Counter("hub_task_restarts", "Background tasks restarted after they stopped",
                        ["task"])
TABLE_ROWS = Gauge("hub_table_rows", "Rows of the tables that retention prunes", ["table"])
PRUNED = Counter("hub_retention_pruned", "Rows deleted by retention", ["table"])
