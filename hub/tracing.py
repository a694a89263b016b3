"""Traces across Kafka hops: OpenTelemetry with W3C Trace Context in the record headers.

Off by default (``HUB_TRACING__ENABLED``). When on, ``hub run`` exports spans over OTLP/HTTP
to ``HUB_TRACING__OTLP_ENDPOINT`` and:

- every outbox record carries a ``traceparent`` header (:func:`inject`, called where the
  outbox rows are made, hub/outbox.py): the span of the handler that emitted it, or, for a
  record written outside any span (an HTTP intake, a job), a new ``publish`` span that
  starts the trace;
- every consumer continues the trace of the record it handles (:func:`consuming`,
  hub/processing.py): one ``process`` span per message, child of the ``traceparent`` it
  came with;
- HTTP calls to peers through httpx are spans of their own and pass ``traceparent`` on
  (opentelemetry-instrumentation-httpx).

So one case is one trace across processes, connectors and HTTP calls. Dead letters and
scheduled retries keep the headers of their record, hence its trace.

The per-message spans (``process``, ``publish``) do not go through the OpenTelemetry SDK:
they are the hot path, one or two per message, and the SDK's span objects, attribute
checks, processor and protobuf encoder cost several times the hub's own work per message
(docs/performance.md). :class:`_Recorder` keeps each finished span as a tuple, and one
background thread encodes them as OTLP protobuf (the constant part of each kind of span,
its name, kind and attributes, encoded once) and posts them in batches, the same OTLP/HTTP
request the SDK's exporter sends. For handlers that may call out (effects), the span is
also made current in OpenTelemetry's context, so the SDK's spans (the httpx calls) are its
children. A bounded queue: spans past ``MAX_QUEUE`` waiting are dropped and counted, never
blocking a consumer. The sampler is parent-based: a record's sampled flag is kept; a new
trace is sampled at ``sample_ratio``.

Off, nothing of OpenTelemetry is imported and each hook is one test of a module global.
"""

from __future__ import annotations

import contextlib
import logging
import random
import struct
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from hub.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

__all__ = ["TRACEPARENT", "configure", "consuming", "enabled", "inject",
           "shutdown"]

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_NULL: AbstractContextManager[None] = contextlib.nullcontext()



class _State:
    tracer: Tracer | None = None
    provider: TracerProvider | None = None
    recorder: _Recorder | None = None
    ratio: float = 1.0
    otel: Any = None
    """The few OpenTelemetry names the hot path uses, looked up once (:func:`configure`)."""


_CURRENT: ContextVar[tuple[int, int, int] | None] = ContextVar("hub_trace_span", default=None)
"""(trace id, span id, flags) of the message being handled, if any: the hub's own span
(sampled) or the unsampled context passing on."""


_state = _State()


def enabled() -> bool:
    return _state.tracer is not None


def configure(settings: TracingSettings, *, instance: str | None = None) -> bool:
    """Set tracing up for this process as ``settings`` say; True when it is on.

    The provider is the hub's own, not OpenTelemetry's global one, so that tracing can be
    switched off (:func:`shutdown`) and on again in one process (the benchmark does)."""
    if not settings.enabled or _state.tracer is not None:
        return _state.tracer is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    attributes: dict[str, Any] = {"service.name": settings.service_name}
    if instance:
        attributes["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attributes),
                              sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces",
                                timeout=settings.export_timeout_s)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _state.recorder = _Recorder(settings.otlp_endpoint.rstrip("/") + "/v1/traces",
                                attributes, timeout_s=settings.export_timeout_s)
    _state.provider = provider
    _state.ratio = settings.sample_ratio
    _state.otel = _names()
    _state.tracer = provider.get_tracer("procurement-hub")
    log.info("tracing on: OTLP to %s as %s", settings.otlp_endpoint, settings.service_name)
    return True


def shutdown() -> None:
    """Export what is buffered and stop (at the end of ``hub run``)."""
    provider, recorder = _state.provider, _state.recorder
    if provider is None:
        return
    _state.tracer = _state.provider = _state.recorder = None
    if recorder is not None:
        recorder.close()
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().uninstrument()
        provider.force_flush()
        provider.shutdown()
    except Exception:
        log.exception("tracing: the last spans could not be exported")


def _names() -> Any:
    from types import SimpleNamespace

    from opentelemetry import context, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    return SimpleNamespace(attach=context.attach, detach=context.detach,
                           current=trace.get_current_span, in_context=trace.set_span_in_context,
                           NonRecordingSpan=NonRecordingSpan, SpanContext=SpanContext,
                           SAMPLED=TraceFlags(TraceFlags.SAMPLED), NOT_SAMPLED=TraceFlags(0))


def inject(headers: list[tuple[str, bytes]], topic: str) -> None:
    """Add the current trace's ``traceparent`` to a record's ``headers`` (in place).

    Outside any span a short ``publish`` span is recorded for the record, so that what
    comes in through HTTP or a job is a trace too."""
    recorder = _state.recorder
    if recorder is None:
        return
    current = _CURRENT.get()
    if current is not None:
        _write(headers, *current)
        return
    ctx = _state.otel.current().get_span_context()
    if ctx.is_valid:  # an unsampled trace passing on, or an SDK span (an HTTP call's)
        _write(headers, ctx.trace_id, ctx.span_id, int(ctx.trace_flags))
        return
    trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
    if random.random() >= _state.ratio:  # sampling, not security
        _write(headers, trace_id, span_id, 0)
        return
    now = time.time_ns()
    recorder.add((_template(f"{topic} publish", _PRODUCER, (
        ("messaging.system", "kafka"), ("messaging.operation.type", "publish"),
        ("messaging.destination.name", topic))), trace_id, span_id, 0, now, now, None))
    _write(headers, trace_id, span_id, 1)


def _write(headers: list[tuple[str, bytes]], trace_id: int, span_id: int, flags: int) -> None:
    for k, _ in headers:
        if k in (TRACEPARENT, TRACESTATE):
            headers[:] = [(k, v) for k, v in headers if k not in (TRACEPARENT, TRACESTATE)]
            break
    headers.append((TRACEPARENT, b"00-%032x-%016x-%02x" % (trace_id, span_id, flags)))


def _parse(value: bytes) -> tuple[int, int, int] | None:
    """``(trace id, parent span id, flags)`` of a version-00 ``traceparent``, else None."""
    parts = bytes(value).split(b"-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) < 2 \
            or parts[0] == b"ff":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    return (trace_id, span_id, flags) if trace_id and span_id else None


def consuming(consumer: str, topic: str, headers: Sequence[tuple[str, bytes]], *,
              calls_out: bool = True) -> AbstractContextManager[Any]:
    """The span of one message handled by ``consumer``, child of the record's trace
    (a new trace when the record has none). A no-op when tracing is off.

    ``calls_out``: the handler may call out (HTTP through httpx), so the span is made
    current in OpenTelemetry's context too, for the SDK's spans of those calls. A
    transactional handler (a pure pipeline step in a database transaction) makes no
    call: ``False`` spares it that (the records it emits see the span either way).

    A trace that is not sampled (flag off in the record's ``traceparent``, or a new trace
    the ratio leaves out) records no span: its context is made current as it is, so that
    what the handler emits and its HTTP calls carry it on, at the cost of a header parse."""
    recorder = _state.recorder
    if recorder is None:
        return _NULL
    value = None
    for k, v in headers:
        if k == TRACEPARENT:
            value = v
            break
    parsed = _parse(value) if value is not None else None
    if parsed is not None:
        if not parsed[2] & 1:  # passed on unsampled, with the record's context
            return _Span(None, (parsed[0], parsed[1], 0), parsed[1], calls_out)
        trace_id, parent = parsed[0], parsed[1]
    elif random.random() >= _state.ratio:  # sampling, not security
        return _Span(None, (random.getrandbits(128) or 1, random.getrandbits(64) or 1, 0), 0,
                     calls_out)
    else:
        trace_id, parent = random.getrandbits(128) or 1, 0
    template = _PROCESS.get((consumer, topic))
    if template is None:
        template = _template(f"{consumer} process", _CONSUMER, (
            ("messaging.system", "kafka"), ("messaging.operation.type", "process"),
            ("messaging.destination.name", topic),
            ("messaging.consumer.group.name", consumer)))
        if len(_PROCESS) < 10_000:
            _PROCESS[(consumer, topic)] = template
    return _Span(template, (trace_id, random.getrandbits(64) or 1, 1), parent, calls_out)


class _Span:
    """The context of one message being handled, current while it is: :func:`inject`
    writes it into what the handler emits, and with ``calls_out`` OpenTelemetry (the
    SDK's HTTP spans) sees it as the parent. With a ``template`` it is one of the hub's
    own sampled spans (``process``), recorded when it ends; without, an unsampled
    trace's context passing on (no span)."""

    __slots__ = ("calls_out", "ids", "otel_token", "parent_id", "start", "template", "token")

    def __init__(self, template: bytes | None, ids: tuple[int, int, int], parent_id: int,
                 calls_out: bool) -> None:
        """``ids``: trace id, span id, flags (1 sampled); ``parent_id`` 0 for a trace's
        first span (and for an unsampled trace started here)."""
        self.template, self.ids, self.parent_id, self.calls_out = (template, ids, parent_id,
                                                                   calls_out)
        self.start = 0
        self.token: Any = None
        self.otel_token: Any = None

    def __enter__(self) -> _Span | None:
        self.token = _CURRENT.set(self.ids)
        if self.calls_out:
            otel = _state.otel
            self.otel_token = otel.attach(otel.in_context(otel.NonRecordingSpan(
                otel.SpanContext(self.ids[0], self.ids[1], self.parent_id != 0,
                                 otel.SAMPLED if self.ids[2] else otel.NOT_SAMPLED))))
        if self.template is None:
            return None
        self.start = time.time_ns()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self.template is not None:
            end = time.time_ns()
            recorder = _state.recorder
            if recorder is not None:
                recorder.add((self.template, self.ids[0], self.ids[1], self.parent_id,
                              self.start, end, exc_type.__name__ if exc_type else None))
        if self.otel_token is not None:
            _state.otel.detach(self.otel_token)
        _CURRENT.reset(self.token)

    def get_span_context(self) -> Any:
        otel = _state.otel
        return otel.SpanContext(self.ids[0], self.ids[1], False, otel.SAMPLED)

    @property
    def parent(self) -> Any:
        if not self.parent_id:
            return None
        otel = _state.otel
        return otel.SpanContext(self.ids[0], self.parent_id, True, otel.SAMPLED)


# -- OTLP protobuf, encoded by hand for the hub's own spans -----------------------------
# opentelemetry/proto/collector/trace/v1/trace_service.proto and trace/v1/trace.proto:
# ExportTraceServiceRequest{1 resource_spans}, ResourceSpans{1 resource, 2 scope_spans},
# Resource{1 attributes}, ScopeSpans{1 scope, 2 spans}, InstrumentationScope{1 name},
# Span{1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start (fixed64),
# 8 end (fixed64), 9 attributes, 15 status}, KeyValue{1 key, 2 value},
# AnyValue{1 string_value}, Status{2 message, 3 code}. Fields may come in any order.

_CONSUMER, _PRODUCER = 5, 4
"""SpanKind: SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER."""
_TIMES = struct.Struct("<BQBQ")
_IDS = struct.Struct(">BBQQBBQ")
_PARENT = struct.Struct(">BBQ")
_M64 = (1 << 64) - 1
_TEMPLATES: dict[tuple[str, int, tuple[tuple[str, str], ...]], bytes] = {}
_PROCESS: dict[tuple[str, str], bytes] = {}
"""The ``process`` span's template by (consumer, topic): the hot path's one look-up."""
MAX_QUEUE = 65_536
"""Finished spans waiting for export; more are dropped (and counted)."""
MAX_BATCH = 8_192
"""Spans per OTLP request."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _attributes(number: int, pairs: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(_field(number, _field(1, k.encode()) + _field(2, _field(1, v.encode())))
                    for k, v in pairs)


def _template(name: str, kind: int, attributes: tuple[tuple[str, str], ...]) -> bytes:
    """The constant fields of a kind of span: name, kind, attributes (encoded once)."""
    key = (name, kind, attributes)
    found = _TEMPLATES.get(key)
    if found is None:
        found = _field(5, name.encode()) + bytes((6 << 3, kind)) + _attributes(9, attributes)
        if len(_TEMPLATES) < 10_000:
            _TEMPLATES[key] = found
    return found


def encode_spans(spans: Sequence[tuple[Any, ...]], resource: Sequence[tuple[str, str]],
                 scope: str = "procurement-hub") -> bytes:
    """An OTLP ``ExportTraceServiceRequest`` of the recorded ``spans``."""
    times, ids, parent = _TIMES.pack, _IDS.pack, _PARENT.pack
    encoded = []
    for template, trace_id, span_id, parent_id, start, end, error in spans:
        parts = [template, ids(0x0A, 16, trace_id >> 64, trace_id & _M64, 0x12, 8, span_id),
                 times(7 << 3 | 1, start, 8 << 3 | 1, end)]
        if parent_id:
            parts.append(parent(0x22, 8, parent_id))
        if error is not None:  # STATUS_CODE_ERROR, named by the exception's type only
            parts.append(_field(15, _field(2, error.encode()) + b"\x18\x02"))
        body = b"".join(parts)
        encoded.append(b"\x12" + _varint(len(body)) + body)
    scope_spans = _field(2, _field(1, _field(1, scope.encode())) + b"".join(encoded))
    return _field(1, _field(1, _attributes(1, resource)) + scope_spans)


class _Recorder:
    """The hub's own finished spans, exported over OTLP/HTTP by one background thread
    every ``interval_s`` (sooner when ``MAX_BATCH`` wait)."""

    def __init__(self, url: str, resource: dict[str, Any], *, timeout_s: float,
                 interval_s: float = 0.5, start: bool = True) -> None:
        self.url, self.timeout_s, self.interval_s = url, timeout_s, interval_s
        self.resource = tuple((k, str(v)) for k, v in resource.items())
        self.dropped = self.exported = self.failed = 0
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._warned_at = float("-inf")
        self._thread = threading.Thread(target=self._run, name="hub-trace-export",
                                        daemon=True)
        if start:
            self._thread.start()

    def add(self, span: tuple[Any, ...]) -> None:
        queue = self._queue
        if len(queue) >= MAX_QUEUE:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) == MAX_BATCH:
            self._wake.set()

    def close(self) -> None:
        """Export what waits, then stop."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3 * self.timeout_s + 5)
        if self.dropped:
            log.warning("tracing: %d span(s) dropped, the export queue was full",
                        self.dropped)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            while self._queue:
                popleft = self._queue.popleft
                batch = [popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                self._post(encode_spans(batch, self.resource), len(batch))
            if self._closing:
                return

    def _post(self, body: bytes, count: int) -> None:
        # urllib, not httpx: httpx is instrumented, and an export must not make spans.
        # The URL is http(s) (TracingSettings.otlp_endpoint's pattern).
        request = urllib.request.Request(self.url, data=body, method="POST", headers={  # noqa: S310
            "Content-Type": "application/x-protobuf"})
        for attempt in range(3):
            try:
                with urllib.request.urlopen(request,  # noqa: S310 -- see above
                                            timeout=self.timeout_s) as answer:
                    answer.read()
                self.exported += count
                return
            except (urllib.error.URLError, OSError) as exc:
                if attempt == 2 or self._closing:
                    self.failed += count
                    if time.monotonic() - self._warned_at > 60:
                        self._warned_at = time.monotonic()
                        log.warning("tracing: %d span(s) not exported to %s (%s)", count,
                                    self.url, type(exc).__name__)
                    return
                self._wake.wait(0.5 * 2 ** attempt)
