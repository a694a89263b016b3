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

Off, nothing of OpenTelemetry is imported and each hook is one test of a module global.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Sequence
from contextlib import AbstractContextManager
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
    ratio: float = 1.0
    otel: Any = None
    """The few OpenTelemetry names the hot path uses, looked up once (:func:`configure`)."""


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
    _state.provider = provider
    _state.ratio = settings.sample_ratio
    _state.otel = _names()
    _state.tracer = provider.get_tracer("procurement-hub")
    log.info("tracing on: OTLP to %s as %s", settings.otlp_endpoint, settings.service_name)
    return True


def shutdown() -> None:
    """Export what is buffered and stop (at the end of ``hub run``)."""
    provider = _state.provider
    if provider is None:
        return
    _state.tracer = _state.provider = None
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
    from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

    return SimpleNamespace(attach=context.attach, detach=context.detach,
                           current=trace.get_current_span, in_context=trace.set_span_in_context,
                           NonRecordingSpan=NonRecordingSpan, SpanContext=SpanContext,
                           TraceFlags=TraceFlags, CONSUMER=SpanKind.CONSUMER,
                           PRODUCER=SpanKind.PRODUCER)


def inject(headers: list[tuple[str, bytes]], topic: str) -> None:
    """Add the current trace's ``traceparent`` to a record's ``headers`` (in place).

    Outside any span a short ``publish`` span is started for the record, so that what
    comes in through HTTP or a job is a trace too."""
    tracer = _state.tracer
    if tracer is None:
        return
    otel = _state.otel
    ctx = otel.current().get_span_context()
    if ctx.is_valid:
        _write(headers, ctx)
        return
    with tracer.start_as_current_span(f"{topic} publish", kind=otel.PRODUCER, attributes={
            "messaging.system": "kafka", "messaging.operation.type": "publish",
            "messaging.destination.name": topic}) as publish:
        _write(headers, publish.get_span_context())


def _write(headers: list[tuple[str, bytes]], ctx: Any) -> None:
    if any(k in (TRACEPARENT, TRACESTATE) for k, _ in headers):
        headers[:] = [(k, v) for k, v in headers if k not in (TRACEPARENT, TRACESTATE)]
    headers.append((TRACEPARENT, b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id,
                                                           int(ctx.trace_flags))))
    if ctx.trace_state:
        headers.append((TRACESTATE, ctx.trace_state.to_header().encode()))


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


def consuming(consumer: str, topic: str, headers: Sequence[tuple[str, bytes]],
              attributes: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
    """The span of one message handled by ``consumer``, child of the record's trace
    (a new trace when the record has none). A no-op when tracing is off.

    A trace that is not sampled (flag off in the record's ``traceparent``, or a new trace
    the ratio leaves out) records no span: its context is made current as it is, so that
    what the handler emits and its HTTP calls carry it on, at the cost of a header parse."""
    tracer = _state.tracer
    if tracer is None:
        return _NULL
    otel = _state.otel
    parent = None
    value = next((v for k, v in headers if k == TRACEPARENT and v is not None), None)
    parsed = _parse(value) if value is not None else None
    if parsed is not None:
        incoming = otel.SpanContext(parsed[0], parsed[1], is_remote=True,
                                    trace_flags=otel.TraceFlags(parsed[2]))
        if not parsed[2] & 1:
            return _PassingOn(incoming)
        parent = otel.in_context(otel.NonRecordingSpan(incoming))
    elif random.random() >= _state.ratio:  # sampling, not security
        return _PassingOn(None)
    return tracer.start_as_current_span(
        f"{consumer} process", context=parent, kind=otel.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                    "messaging.destination.name": topic,
                    "messaging.consumer.group.name": consumer, **(attributes or {})})


class _PassingOn:
    """Makes an unsampled trace's context current without a span (see :func:`consuming`)."""

    __slots__ = ("incoming", "token")

    def __init__(self, incoming: Any) -> None:
        self.incoming = incoming
        self.token: Any = None

    def __enter__(self) -> None:
        otel = _state.otel
        incoming = self.incoming or otel.SpanContext(
            random.getrandbits(128) or 1, random.getrandbits(64) or 1, is_remote=False,
            trace_flags=otel.TraceFlags(0))
        self.token = otel.attach(otel.in_context(otel.NonRecordingSpan(incoming)))

    def __exit__(self, *exc: object) -> None:
        _state.otel.detach(self.token)
