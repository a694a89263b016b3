"""Fixtures of the procurement-case end-to-end tests (tests/e2e/casestack.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devkit.pki import ensure_pki
from hub.db import create_db_engine
from hub.sample.timeline import CaseTimeline
from hub.settings import KafkaSettings
from hub.topics import apply_topics
from tests.card.fixtures import require_vpcd
from tests.e2e.casestack import CaseStack, timeline_for


@pytest.fixture(scope="module")
def case_home(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Path:
    """The hub's RUN_DIR shared by a module's hub processes (PKI, SoftHSM2 token); the
    topics applied once."""
    path = tmp_path_factory.mktemp("hubhome")
    ensure_pki(path / "pki")
    asyncio.run(apply_topics(KafkaSettings(bootstrap_servers=kafka_bootstrap)))
    return path


@pytest.fixture
def case_stack(kafka_bootstrap: str, pg_url: str, case_home: Path,
               tmp_path: Path) -> Iterator[CaseStack]:
    """Peers and a `hub run` process for one case, on a fresh PostgreSQL database."""
    require_vpcd()
    engine = create_db_engine(pg_url)
    built = CaseStack(kafka_bootstrap, pg_url, engine, case_home, tmp_path)
    try:
        yield built
    finally:
        built.close()
        engine.dispose()
        if built.hub is not None:
            print(built.hub.log())  # shown by pytest when the test failed


@pytest.fixture
async def case_timeline(kafka_bootstrap: str) -> AsyncIterator[CaseTimeline]:
    """The case's events as they come back from Kafka."""
    line = timeline_for(kafka_bootstrap)
    await line.start()
    try:
        yield line
    finally:
        await line.stop()
