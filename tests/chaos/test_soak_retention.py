"""A soak of 50,000 messages through a real `hub run` process with retention in seconds:
the processed markers never get older than the retention allows (topic retention + margin,
plus one pruning interval and the round's own time), the tables stay far below the
message count, and they are empty once the stream is over. The 1,000,000-message soak is
benchmarks/soak_retention.py (figures in docs/reliability.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.hubproc import HubProcess
from tests.support.soak import soak

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

N = 50_000
SLACK_S = 10.0
"""A pruning round's own time and the sampling period, on a loaded machine."""


async def test_a_soak_keeps_the_tables_bounded_by_retention(
        kafka_bootstrap: str, pg_url: str, pg_engine: Any, unique: str, tmp_path: Path,
        procs: list[HubProcess]) -> None:
    result = await soak(kafka_bootstrap, pg_url, pg_engine, unique, tmp_path, N,
                        retention_s=5.0, margin_s=1.0, interval_s=1.0, procs=procs,
                        chunk=2_500, min_duration_s=20.0)  # longer than what is kept
    print(json.dumps(result.as_dict()))
    assert result.doubled == 0
    assert result.oldest_marker_max_s <= result.kept_s + result.interval_s + SLACK_S
    # Bounded by what comes in during the retention, not by what came in overall.
    assert result.max_rows["hub_processed_message"] < N
    assert result.final_rows["hub_processed_message"] == 0
    assert result.final_rows["hub_outbox"] == 0
