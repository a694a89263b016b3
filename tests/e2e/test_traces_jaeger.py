"""One case, one trace: two `hub run` processes and an HTTP peer, seen in a real Jaeger.

Process A runs the test ledger (a record in, a row and an event out); process B reads the
event and POSTs it to a peer with httpx, as connectors do. Both export over OTLP to Jaeger
(v1.75.0, built by deploy/jaeger.sh). Jaeger's query API must then hold, for each case, one
trace with spans of both services: A's consumer span, B's consumer span as its child (the
``traceparent`` header crossed Kafka), and B's HTTP client span, whose ``traceparent`` the
peer received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from schemas.envelope import new_envelope
from tests.support import ledger
from tests.support.hubproc import HubProcess, wait_for
from tests.support.jaeger import Jaeger
from tests.support.kafka import create_topics, publish
from tests.support.ledger import LedgerEntryRequested

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow]

CASES = 3


class _Peer(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[int, str | None]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((body["entry_no"], self.headers.get("traceparent")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[str, list[tuple[int, str | None]]]]:
    received: ClassVar[list[tuple[int, str | None]]] = []
    handler = type("Peer", (_Peer,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notify", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    j = Jaeger(tmp_path)
    j.start()
    yield j
    j.stop()


async def test_a_case_through_two_hub_processes_is_one_trace_in_jaeger(
        kafka_bootstrap: str, db_url: str, engine: Any, unique: str, tmp_path: Path,
        jaeger: Jaeger, peer: tuple[str, list[tuple[int, str | None]]]) -> None:
    peer_url, received = peer
    prefix = f"t{unique}.trace"
    t_in, t_out = ledger.topics(prefix)
    await create_topics(kafka_bootstrap, [t_in, t_out])
    ledger.create_tables(engine)
    service_a, service_b = f"hub-a-{unique}", f"hub-b-{unique}"
    procs = []
    try:
        for service, bootstrap in ((service_a, "tests.support.traced:first"),
                                   (service_b, "tests.support.traced:second")):
            proc = HubProcess(kafka_bootstrap, db_url, f"g{unique}", prefix,
                              tmp_path / f"{service}.log", bootstrap=bootstrap, env={
                                  "HUB_TRACING__ENABLED": "true",
                                  "HUB_TRACING__OTLP_ENDPOINT": jaeger.otlp_endpoint,
                                  "HUB_TRACING__SERVICE_NAME": service,
                                  "HUB_TRACING__SAMPLE_RATIO": "1",
                                  "TRACE_PEER_URL": peer_url})
            procs.append(proc)
            proc.start()
        await publish(kafka_bootstrap, t_in.name, [
            new_envelope(LedgerEntryRequested(entry_no=n, amount=n), correlation_id=f"case-{n}",
                         procuring_entity="saitama-pref", producer="test")
            for n in range(CASES)])
        await wait_for(lambda: len(received) >= CASES, timeout_s=180,
                       what="every case posted to the peer")
        for proc in procs:  # a stopping hub exports the spans it still holds
            assert proc.terminate() == 0
    finally:
        for proc in procs:
            proc.ensure_stopped()

    assert sorted(n for n, _ in received) == list(range(CASES))
    peer_traces = {}
    for n, traceparent in received:
        assert traceparent is not None, f"case {n} reached the peer without a traceparent"
        peer_traces[n] = traceparent.split("-")[1]
    assert len(set(peer_traces.values())) == CASES, "two cases shared one trace"

    def complete() -> bool:
        found = {t["traceID"] for t in jaeger.traces(service_b)}
        return set(peer_traces.values()) <= found

    await wait_for(complete, timeout_s=60, what="the traces in Jaeger")
    by_id = {t["traceID"]: t for t in jaeger.traces(service_a)}
    for n, trace_id in peer_traces.items():
        trace = by_id.get(trace_id)
        assert trace is not None, f"case {n}: no trace {trace_id} with spans of {service_a}"
        services = {p["serviceName"] for p in trace["processes"].values()}
        assert services == {service_a, service_b}, f"case {n}: spans of {services}"
        spans = {s["spanID"]: s for s in trace["spans"]}
        service_of = {sid: trace["processes"][s["processID"]]["serviceName"]
                      for sid, s in spans.items()}
        first = [s for s in spans.values() if s["operationName"] == "ledger process"]
        second = [s for s in spans.values() if s["operationName"] == "notifier process"]
        http = [s for s in spans.values() if s["operationName"] == "POST"]
        assert len(first) == 1, f"case {n}: {[s['operationName'] for s in spans.values()]}"
        assert len(second) == 1
        assert len(http) == 1
        assert service_of[first[0]["spanID"]] == service_a
        assert service_of[second[0]["spanID"]] == service_b
        assert first[0]["references"] == [], "the case's first span has a parent"
        parent_of_second = [r["spanID"] for r in second[0]["references"]
                            if r["refType"] == "CHILD_OF"]
        assert parent_of_second == [first[0]["spanID"]], "the trace did not cross Kafka"
        parent_of_http = [r["spanID"] for r in http[0]["references"] if r["refType"] == "CHILD_OF"]
        assert parent_of_http == [second[0]["spanID"]]
