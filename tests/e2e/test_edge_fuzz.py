"""A schemathesis pass over the OpenAPI of every HTTP edge of a real ``hub run`` on
loopback: the card-agent gateway, the staff API (with a staff token, so it gets past the
check), the review pages and both webhooks (tests/support/edgewiring.py).

Each operation gets ``FUZZ_EXAMPLES`` generated requests, valid and invalid (bounded so
that CI stays fast); every answer must be below 500 and match the response schema the
OpenAPI document gives for its status. The rate limits are lifted for the pass (they
are tested in tests/integration/test_http_edge.py), so that the requests reach the
routes. What the pass found and how many requests it made: docs/security.md.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import ROOT, HubProcess
from tests.support.kafka import create_topics
from tests.support.tlsca import make_test_ca

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

FUZZ_EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "25"))
FUZZ_SECONDS = int(os.environ.get("HUB_FUZZ_SECONDS", "30"))
"""Each of the two passes (staff API; every other edge) stops after this long."""
STAFF_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
             ) -> Iterator[str]:
    """A real ``hub run`` with every edge and no consumers; its base URL."""
    home = tmp_path_factory.mktemp("fuzz")
    unique = uuid.uuid4().hex[:8]
    prefix = f"test.edge.{unique}"
    asyncio.run(create_topics(kafka_bootstrap, [TopicSpec(
        f"{prefix}.webhooks", "webhook announcements", KeyKind.CASE, partitions=1)]))
    ca = make_test_ca(home / "ca")
    hub = HubProcess(kafka_bootstrap, f"sqlite:///{home / 'hub.db'}", f"fuzz{unique}", prefix,
                     home / "hub.log", bootstrap="tests.support.edgewiring:wiring", env={
                         "EDGE_CARD_ROOT": str(ca.ca_file), "EDGE_STAFF_TOKEN": STAFF_TOKEN,
                         "EDGE_WEBHOOK_SECRET": secrets.token_urlsafe(24),
                         "EDGE_CLOUDSIGN_TOKEN": secrets.token_urlsafe(32),
                         "EDGE_TOPIC_PREFIX": prefix, "HUB_RUN_DIR": str(home / "run"),
                         "HUB_HTTP__RATE_PER_MINUTE": "1000000",
                         "HUB_HTTP__RATE_BURST": "100000", "HUB_LOG_LEVEL": "WARNING"})
    hub.start()
    url = f"http://127.0.0.1:{hub.port}"
    deadline = time.monotonic() + 90
    try:
        while True:  # bounded polling until the hub answers
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or (hub.proc and hub.proc.poll() is not None):
                raise AssertionError("hub run did not start: "
                                     + (home / "hub.log").read_text(errors="replace")[-4000:])
            time.sleep(0.2)
        yield url
    finally:
        hub.terminate()
        hub.ensure_stopped()
        log = (home / "hub.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-6000:]


def _schemathesis(url: str, report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One ``schemathesis run`` over the hub's OpenAPI (its exit code is 0 only when no
    check failed); its JUnit report in ``report``."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", str(FUZZ_EXAMPLES), "--seed", "20261205",
         "--max-time", str(FUZZ_SECONDS), "--request-timeout", "30",
         "--report", "junit", "--report-junit-path", str(report), "--no-color", *extra],
        capture_output=True, text=True, timeout=FUZZ_SECONDS * 3 + 120, check=False,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                       "SCHEMATHESIS_HOOKS": "tests.support.fuzzhooks"})


def test_no_edge_answers_5xx_or_breaks_its_schema(fuzz_hub: str, tmp_path: Path) -> None:
    staff = _schemathesis(fuzz_hub, tmp_path / "staff.xml", "--include-path-regex",
                          "^/contracts", "--header", f"Authorization: Bearer {STAFF_TOKEN}")
    edges = _schemathesis(fuzz_hub, tmp_path / "edges.xml", "--exclude-path-regex",
                          "^/contracts")
    for run in (staff, edges):
        summary = run.stdout[-6000:]
        print(summary[summary.find("SUMMARY"):])  # the counts, with pytest -rP
        assert run.returncode == 0, summary + run.stderr[-2000:]
        assert "passed" in summary.lower(), summary
    tested = [ET.parse(tmp_path / f"{name}.xml").getroot() for name in ("staff", "edges")]
    cases = sum(len(root.findall(".//testcase")) for root in tested)
    assert cases >= 25, cases  # every operation of the gateway, staff, review, webhooks


def test_the_fuzzed_document_names_every_edge(fuzz_hub: str) -> None:
    paths = httpx.get(f"{fuzz_hub}/openapi.json", timeout=10).json()["paths"]
    for edge in ("/gateway/challenges", "/contracts", "/contract/review/{token}/agree",
                 "/webhooks/online-application", "/webhooks/cloudsign/{token}"):
        assert edge in paths, edge
