"""Soak: 1,000,000 messages through a real `hub run` process, retention in seconds.

Shows that the bookkeeping tables stay bounded by the retention settings however many
messages go through: the processed markers' table holds what came in during the topics'
retention plus the margin (and one pruning interval), not what came in overall, and is
empty once the stream is over. Every entry is booked once. The same run with 50,000
messages is a chaos test in CI (tests/chaos/test_soak_retention.py); this one takes longer
than CI should (about 12 minutes at the 1,400 msg/s of a loaded 2-core machine).

Needs the test Kafka and PostgreSQL (HUB_TEST_KAFKA, HUB_TEST_POSTGRES_URL). Results:
benchmarks/results/soak.json.

    .venv/bin/python -m benchmarks.soak_retention [--n 1000000] [--retention-s 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from benchmarks._database import drop_database, fresh_database
from hub.db import create_db_engine
from tests.support.soak import soak

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KAFKA = os.environ.get("HUB_TEST_KAFKA", "127.0.0.1:9092")


async def main(n: int, retention_s: float, margin_s: float, interval_s: float) -> None:
    unique = uuid.uuid4().hex[:8]
    url = fresh_database()
    engine = create_db_engine(url)
    try:
        with tempfile.TemporaryDirectory() as logs:
            result = await soak(KAFKA, url, engine, unique, Path(logs), n,
                                retention_s=retention_s, margin_s=margin_s,
                                interval_s=interval_s, chunk=20_000)
    finally:
        engine.dispose()
        drop_database(url)
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:  # a million records on the shared broker are not kept
            await admin.delete_topics([f"t{unique}.soak.{k}{d}" for k in ("in", "out")
                                       for d in ("", ".dlq")])
        except Exception as exc:
            print(f"soak topics not deleted: {exc!r}")
        finally:
            await admin.close()
    out = {"benchmark": "soak_retention", "machine": platform.machine(),
           "cpus": os.cpu_count(), **result.as_dict(),
           "bounded": result.max_rows["hub_processed_message"] < n
           and result.final_rows["hub_processed_message"] == 0}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--retention-s", type=float, default=5.0)
    parser.add_argument("--margin-s", type=float, default=1.0)
    parser.add_argument("--interval-s", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.retention_s, args.margin_s, args.interval_s))
