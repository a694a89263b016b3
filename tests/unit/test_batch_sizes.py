"""A consumer's own batch size (ConsumerSpec.batch_max_records) wins over the hub-wide
KafkaSettings.batch_max_records; the registration pipeline takes 2,000 records per batch.
And the registration benchmark's throughput: the slope through the batches' steps."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.bench_registration import steady_rate
from hub.bootstrap import registration_consumer, surety_consumer
from hub.broker import ConsumerRuntime, build_broker
from hub.settings import KafkaSettings


def subscribed_max_records(spec: object, kafka: KafkaSettings) -> int:
    rt = ConsumerRuntime(spec, None, kafka, on_committed=lambda: None)  # type: ignore[arg-type]
    rt.subscribe(build_broker(kafka))
    return int(rt.subscriber.max_records)


def test_a_consumers_own_batch_size_wins_over_the_hubs() -> None:
    kafka = KafkaSettings(batch_max_records=300)
    registration = registration_consumer()
    assert registration.batch_max_records == 2_000
    assert subscribed_max_records(registration, kafka) == 2_000
    assert surety_consumer().batch_max_records is None  # the hub's setting
    assert subscribed_max_records(surety_consumer(), kafka) == 300
    assert subscribed_max_records(dataclasses.replace(registration, batch_max_records=None),
                                  kafka) == 300


def test_steady_rate_is_the_slope_through_the_steps() -> None:
    # evenly spaced answers, one per ms: 1,000 per second, as first-to-last says too
    assert steady_rate(list(range(0, 10_000))) == pytest.approx(1_000)
    # 5 batches of 2,000 answers, each leaving at once, 1 s apart: 2,000 per second.
    # "N-1 over first-to-last" would say 9,999 / 4 s = 2,500.
    steps = [1_000 * (i // 2_000) for i in range(10_000)]
    assert steady_rate(steps) == pytest.approx(2_000, rel=0.01)
