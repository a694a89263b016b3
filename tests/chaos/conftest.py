"""The chaos suite's 3-broker cluster: started once for the session on free ports
(deploy/kafka.sh --brokers 3), removed at the end. Every test leaves it whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, start_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield started
    finally:
        started.script("wipe")
