"""A 3-broker KRaft cluster of its own (``deploy/kafka.sh --brokers 3``) for tests and
benchmarks: its ports and data directory chosen here, nodes killed and started again."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.support.hubproc import ROOT, free_port

__all__ = ["Cluster", "start_cluster"]


@dataclass
class Cluster:
    env: dict[str, str]
    ports: list[int]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def script(self, *args: str, timeout_s: float = 300) -> str:
        done = subprocess.run(["bash", "deploy/kafka.sh", "--brokers", "3", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
        if done.returncode != 0:
            raise AssertionError(f"deploy/kafka.sh --brokers 3 {' '.join(args)} failed:\n"
                                 f"{done.stdout}{done.stderr}")
        return done.stdout

    async def kill(self, node: int) -> None:
        """SIGKILL node ``node`` (1 to 3): a broker and controller crash."""
        await asyncio.to_thread(self.script, "kill", str(node))

    async def start_one(self, node: int) -> None:
        await asyncio.to_thread(self.script, "start-one", str(node))

    async def describe(self, topics: list[str] | None) -> dict[str, list[dict[str, object]]]:
        """Each topic's partitions as the metadata shows them (leader, replicas, isr);
        ``None``: every topic."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            return {t["topic"]: sorted(t["partitions"], key=lambda p: p["partition"])
                    for t in await admin.describe_topics(topics)}
        finally:
            await admin.close()

    async def leader(self, topic: str, partition: int = 0) -> int:
        parts = (await self.describe([topic]))[topic]
        return int(parts[partition]["leader"])  # type: ignore[call-overload]

    async def fully_replicated(self, topics: list[str] | None = None) -> bool:
        """Every partition of ``topics`` (default: every topic) has a leader and all three
        replicas in sync."""
        try:
            described = await self.describe(topics)
        except Exception:  # a node just started: its metadata may not answer yet
            return False
        return all(len(parts) > 0 and all(
            int(p["leader"]) >= 0 and len(p["isr"]) == 3  # type: ignore[call-overload, arg-type]
            for p in parts) for parts in described.values())


def start_cluster(run_dir: Path) -> Cluster:
    """Start a cluster with its data under ``run_dir`` on free loopback ports."""
    ports = [free_port() for _ in range(3)]
    env = {**os.environ, "HUB_RUN_DIR": str(run_dir),
           "HUB_KAFKA_CLUSTER_PORTS": ",".join(map(str, ports)),
           "HUB_KAFKA_CLUSTER_CONTROLLER_PORTS": ",".join(str(free_port()) for _ in range(3))}
    cluster = Cluster(env, ports)
    cluster.script("start")
    return cluster
