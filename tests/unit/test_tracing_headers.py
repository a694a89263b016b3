"""W3C trace context in outbox records: absent when tracing is off, continued when on.

The end-to-end proof (two `hub run` processes, one trace in a real Jaeger) is
tests/e2e/test_traces_jaeger.py; this pins the header contract itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from hub import tracing
from hub.outbox import record_row
from hub.settings import TracingSettings
from schemas.envelope import new_envelope
from schemas.wire import header
from tests.support.hubproc import free_port
from tests.support.ledger import LedgerEntryRequested

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(?:01|03)$")
"""Version 00, trace id, parent span id, flags: sampled (01), and with a random trace id (03,
Trace Context level 2)."""
TRACEPARENT_ANY = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _row_headers() -> list[tuple[str, bytes]]:
    env = new_envelope(LedgerEntryRequested(entry_no=1, amount=5), correlation_id="case-1",
                       procuring_entity="saitama-pref", producer="test")
    row = record_row("t.ledger.in", env, datetime.now(UTC))
    headers: list[tuple[str, bytes]] = row["headers_parsed"]
    assert row["headers"].count("traceparent") == sum(k == "traceparent" for k, _ in headers)
    return headers


@pytest.fixture
def traced() -> Iterator[None]:
    # Spans go to a loopback port where nothing listens: exporting fails quietly, in the
    # background, and does not change what the headers carry.
    assert tracing.configure(TracingSettings(
        enabled=True, otlp_endpoint=f"http://127.0.0.1:{free_port()}", export_timeout_s=1,
        sample_ratio=1.0))
    try:
        yield
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def test_off_by_default_no_header_and_no_span() -> None:
    assert TracingSettings().enabled is False
    assert TracingSettings().sample_ratio == 0.1  # an operator turns it up to follow all
    assert not tracing.enabled()
    assert header(_row_headers(), "traceparent") is None
    with tracing.consuming("c", "t", [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16
                                       + b"-01")]) as span:
        assert span is None


def test_a_record_outside_any_span_starts_a_trace(traced: None) -> None:
    value = header(_row_headers(), "traceparent")
    assert value is not None
    assert TRACEPARENT.match(value), value


def test_a_consumer_continues_the_records_trace_into_what_it_emits(traced: None) -> None:
    incoming = _row_headers()
    trace_id, parent_span = TRACEPARENT.match(header(incoming, "traceparent") or "").groups()
    with tracing.consuming("ledger", "t.ledger.in", incoming) as span:
        ctx = span.get_span_context()
        assert f"{ctx.trace_id:032x}" == trace_id
        assert f"{span.parent.span_id:016x}" == parent_span
        emitted = header(_row_headers(), "traceparent") or ""
    out_trace, out_span = TRACEPARENT.match(emitted).groups()  # type: ignore[union-attr]
    assert out_trace == trace_id, "the emitted record left the case's trace"
    assert out_span == f"{ctx.span_id:016x}", "the emitted record's parent is not the handler"
    # Written once, even when the envelope's headers already held one (a re-emitted record).
    headers = list(incoming)
    tracing.inject(headers, "t")
    assert sum(k == "traceparent" for k, _ in headers) == 1


def test_an_unsampled_trace_passes_on_without_a_span() -> None:
    assert tracing.configure(TracingSettings(
        enabled=True, otlp_endpoint=f"http://127.0.0.1:{free_port()}", export_timeout_s=1,
        sample_ratio=0.0))
    try:
        # A new trace the ratio leaves out: a context with the sampled flag off, no span.
        with tracing.consuming("ledger", "t.ledger.in", []) as span:
            assert span is None
            started = header(_row_headers(), "traceparent") or ""
        match = TRACEPARENT_ANY.match(started)
        assert match is not None, started
        assert int(match.group(3), 16) & 1 == 0
        # Downstream: the record's context is carried on as it is, still unsampled.
        incoming = [("traceparent", started.encode())]
        with tracing.consuming("notifier", "t.ledger.out", incoming) as span:
            assert span is None
            assert header(_row_headers(), "traceparent") == started
        # A malformed header is a new trace, not an error.
        with tracing.consuming("notifier", "t", [("traceparent", b"00-zz-1-01")]):
            assert TRACEPARENT_ANY.match(header(_row_headers(), "traceparent") or "")
    finally:
        tracing.shutdown()


def test_the_hubs_spans_are_otlp_as_the_official_protobuf_reads_them() -> None:
    """The hand-encoded export request, parsed by OpenTelemetry's own generated protobuf
    classes (opentelemetry-proto): resource, scope, ids, parent, times, kind, attributes,
    and an error status naming only the exception's type."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    template = tracing._template("ledger process", tracing._CONSUMER, (
        ("messaging.system", "kafka"), ("messaging.destination.name", "t.ledger.in")))
    body = tracing.encode_spans([
        (template, 0x1234 << 100, 0xABCDEF, 0x42, 1_700_000_000_000_000_001,
         1_700_000_000_000_500_000, None),
        (template, 7, 8, 0, 10, 20, "ValueError")],
        resource=(("service.name", "hub-a"), ("service.instance.id", "i-1")))
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    assert {a.key: a.value.string_value for a in resource_spans.resource.attributes} == {
        "service.name": "hub-a", "service.instance.id": "i-1"}
    (scope,) = resource_spans.scope_spans
    assert scope.scope.name == "procurement-hub"
    first, second = scope.spans
    assert first.trace_id == (0x1234 << 100).to_bytes(16, "big")
    assert first.span_id == (0xABCDEF).to_bytes(8, "big")
    assert first.parent_span_id == (0x42).to_bytes(8, "big")
    assert first.name == "ledger process"
    assert first.kind == 5  # SPAN_KIND_CONSUMER
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (
        1_700_000_000_000_000_001, 1_700_000_000_000_500_000)
    assert {a.key: a.value.string_value for a in first.attributes} == {
        "messaging.system": "kafka", "messaging.destination.name": "t.ledger.in"}
    assert first.status.code == 0
    assert second.parent_span_id == b""  # a trace's first span
    assert (second.status.code, second.status.message) == (2, "ValueError")


def test_a_failing_handler_ends_its_span_in_error_and_a_full_queue_drops(
        traced: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A recorder whose export thread is not started: what is recorded stays in its queue.
    recorder = tracing._Recorder(f"http://127.0.0.1:{free_port()}/v1/traces", {},
                                 timeout_s=1, start=False)
    monkeypatch.setattr(tracing._state, "recorder", recorder)
    with pytest.raises(KeyError), tracing.consuming("ledger", "t.ledger.in", []):
        raise KeyError("a secret value")
    (span,) = recorder._queue
    assert span[-1] == "KeyError"  # the type only, never the message
    monkeypatch.setattr(tracing, "MAX_QUEUE", 1)
    with tracing.consuming("ledger", "t.ledger.in", []):
        pass
    assert len(recorder._queue) == 1
    assert recorder.dropped == 1
