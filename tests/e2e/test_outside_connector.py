"""An outside connector, installed with pip, through Kafka: examples/docmgmt-webdav (not
part of the hub) files each concluded contract in the 文書管理システム, a real WebDAV
server (WsgiDAV) on loopback. A `hub run` process discovers it through its entry point;
the server is down at first (the hub retries, the contract arrives once it is up), a
tampered PDF is dead-lettered with its rule (X-DOCMGMT-1) and the consumer keeps going;
its own contract tests pass too."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.cloudsign.documents import FileDocumentStore
from hub.dlq import read_dead_letters
from hub.staff import token_sha256
from schemas.cloudsign import ContractConcluded
from schemas.envelope import new_envelope
from schemas.topics import KeyKind, TopicSpec
from tests.support.hubproc import ROOT, HubProcess, free_port, settings_for, wait_for
from tests.support.kafka import create_topics, publish

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e]

EXAMPLE = ROOT / "examples" / "docmgmt-webdav"
TOKEN = "outside-connector-admin"
DAV_PASSWORD = "dav-test-password"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example pip-installed (a wheel built from its pyproject.toml) into a directory
    of its own, which the hub's process gets on its path; the hub's venv stays as it was."""
    assert importlib.util.find_spec("hub_connector_docmgmt") is None  # not in the hub's venv
    target = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--no-build-isolation", "--target", str(target), str(EXAMPLE)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(target.glob("hub_connector_docmgmt_webdav-*.dist-info/entry_points.txt"))
    return target


def concluded(store: FileDocumentStore, case_id: str, *, tamper: bool = False) -> Any:
    pdf = store.put(f"{case_id}-契約書.pdf", f"%PDF-1.7 signed {case_id}".encode())
    if tamper:
        pdf = pdf.model_copy(update={"sha256": hashlib.sha256(b"another").hexdigest()})
    certificate = store.put(f"{case_id}-合意締結証明書.pdf", f"%PDF-1.7 cert {case_id}".encode())
    event = ContractConcluded(document_id=f"doc-{case_id[-3:]}", case_id=case_id,
                              title=f"{case_id} 道路補修工事", concluded_at=datetime.now(UTC),
                              signed_files=(pdf,), certificate=certificate)
    return new_envelope(event, correlation_id=case_id, procuring_entity="ashikaga-city",
                        producer="test")


@pytest.fixture
def peer(installed: Path, tmp_path: Path) -> Iterator[Any]:
    sys.path.insert(0, str(installed))
    try:
        from hub_connector_docmgmt.peer import WebDavPeer

        server = WebDavPeer(tmp_path / "dav", password=DAV_PASSWORD, port=free_port())
        yield server
        server.stop()
    finally:
        sys.path.remove(str(installed))
        for name in [m for m in sys.modules if m.startswith("hub_connector_docmgmt")]:
            del sys.modules[name]


async def test_a_concluded_contract_reaches_the_webdav_server_through_kafka(
        installed: Path, peer: Any, kafka_bootstrap: str, pg_url: str, unique: str,
        tmp_path: Path) -> None:
    topic = TopicSpec(f"t{unique}.contract.events", "test copy", KeyKind.CASE, partitions=3)
    await create_topics(kafka_bootstrap, [topic])
    store = FileDocumentStore(tmp_path / "documents")
    hub = HubProcess(kafka_bootstrap, pg_url, f"t{unique}", f"t{unique}", tmp_path / "hub.log",
                     bootstrap="tests.support.pluginwiring:wiring", env={
                         "PYTHONPATH": f"{ROOT}{os.pathsep}{installed}",
                         "PLUGIN_WIRING_ONLY": "docmgmt-webdav",
                         "HUB_DOCMGMT_TOPIC": topic.name,
                         "HUB_DOCMGMT_BASE_URL": peer.url,
                         "HUB_DOCMGMT_PASSWORD": DAV_PASSWORD,
                         "HUB_DOCMGMT_DOCUMENTS_DIR": str(store.root),
                         "HUB_DOCMGMT_TIMEOUT_S": "5",
                         "HUB_DOCMGMT_RETRY_BASE_S": "0.05",
                         "HUB_RETRY__MAX_ATTEMPTS": "50",
                         "HUB_RETRY__BASE_DELAY_S": "0.2",
                         "HUB_RETRY__MAX_DELAY_S": "1",
                         "HUB_RETRY__POLL_INTERVAL_S": "0.1",
                         "HUB_STAFF__TOKEN_SHA256": json.dumps([token_sha256(TOKEN)]),
                     })
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.port}", timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"})

    async def status() -> dict[str, Any] | None:
        try:
            answer = await api.get("/connectors/docmgmt-webdav/status")
        except httpx.TransportError:
            return None
        return answer.json() if answer.status_code == 200 else None

    hub.start()
    try:
        await wait_for(lambda: _ready(status), what="the hub with the plugin discovered")
        # The WebDAV server is down: the hub tries, fails transiently and keeps the event.
        await publish(kafka_bootstrap, topic.name, [concluded(store, "R7-工事-001")])
        await wait_for(lambda: _failed_transiently(status), what="a transient failure")
        peer.start()
        folder = peer.root / "contracts" / "R7-工事-001"
        await wait_for((folder / "metadata.json").exists, what="the contract filed")
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        assert metadata["case_id"] == "R7-工事-001"
        assert {f["name"] for f in metadata["files"]} == {"R7-工事-001-契約書.pdf",
                                                          "R7-工事-001-合意締結証明書.pdf"}
        assert (folder / "R7-工事-001-契約書.pdf").read_bytes() == \
            "%PDF-1.7 signed R7-工事-001".encode()

        # A tampered PDF is refused for good (dead letter naming X-DOCMGMT-1); the next
        # contract still goes through.
        await publish(kafka_bootstrap, topic.name, [concluded(store, "R7-工事-002", tamper=True),
                                                    concluded(store, "R7-工事-003")])
        third = peer.root / "contracts" / "R7-工事-003" / "metadata.json"
        await wait_for(third.exists, what="the contract after the poison filed")
        settings = settings_for(kafka_bootstrap, pg_url, unique)

        async def dead() -> list[Any]:
            return await read_dead_letters(settings, [topic.dlq])

        await wait_for(lambda: _has_letters(dead), what="the dead letter")
        [letter] = await dead()
        assert letter.context("reason") == "permanent-failure"
        assert letter.context("rule-ids") == "X-DOCMGMT-1"
        assert not (peer.root / "contracts" / "R7-工事-002" / "metadata.json").exists()
        created = {p: n for p, n in peer.created.items() if p.endswith("metadata.json")}
        assert created == {"/contracts/R7-工事-001/metadata.json": 1,
                           "/contracts/R7-工事-003/metadata.json": 1}
    finally:
        await api.aclose()
        code = hub.terminate()
        print(hub.log_path.read_text(errors="replace")[-6000:])
    assert code == 0


async def _ready(status: Any) -> bool:
    return await status() is not None


async def _failed_transiently(status: Any) -> bool:
    found = await status()
    return bool(found and found["last_error"]
                and found["last_error"]["kind"] == "TransientPeerError")


async def _has_letters(dead: Any) -> bool:
    return len(await dead()) >= 1


def test_the_example_passes_the_connector_contract(installed: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{installed}"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(EXAMPLE / "tests")], cwd=EXAMPLE, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "7 passed" in run.stdout
