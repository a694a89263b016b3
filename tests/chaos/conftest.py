"""Chaos tests: real ``hub run`` processes while a part fails under them.

Each test that stops a part starts its own copy of it (same deploy script, another port
and data directory) and stops it itself: the shared Kafka and PostgreSQL of the other
tests are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hubproc import ROOT, HubProcess, free_port


@dataclass
class OwnPostgres:
    """A throw-away PostgreSQL cluster (deploy/postgres.sh with its own run dir and port)."""

    url: str
    env: dict[str, str]

    def _ctl(self, action: str) -> None:
        subprocess.run(["bash", "deploy/postgres.sh", action], cwd=ROOT, env=self.env,
                       check=True, timeout=120, capture_output=True)

    def stop(self) -> None:
        self._ctl("stop")

    def start(self) -> None:
        self._ctl("start")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    # Not under pytest's tmp_path: the cluster runs as the postgres user, which cannot
    # enter root's private temporary directories.
    run_dir = Path(tempfile.mkdtemp(prefix="hub-chaos-pg-"))
    run_dir.chmod(0o755)
    port = free_port()
    env = {**os.environ, "HUB_RUN_DIR": str(run_dir), "HUB_PG_PORT": str(port)}
    pg = OwnPostgres(f"postgresql+psycopg://hub@127.0.0.1:{port}/hub", env)
    try:
        pg.start()
        yield pg
    finally:
        subprocess.run(["bash", "deploy/postgres.sh", "stop"], cwd=ROOT, env=env, check=False,
                       timeout=120, capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def procs() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for p in started:
        p.ensure_stopped()
    for p in started:
        if os.environ.get("HUB_TEST_SHOW_LOGS"):
            print(p.log_path.read_text(errors="replace")[-3000:])
