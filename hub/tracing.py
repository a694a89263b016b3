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


def inject(headers: list[tuple[str, bytes]], topic: str) -> None:
    """Add the current trace's ``traceparent`` to a record's ``headers`` (in place).

    Outside any span a short ``publish`` span is started for the record, so that what
    comes in through HTTP or a job is a trace too."""
    tracer = _state.tracer
    if tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    span = trace.get_current_span()
    if span.get_span_context().is_valid:
        _write(headers, span)
        return
    with tracer.start_as_current_span(f"{topic} publish", kind=SpanKind.PRODUCER, attributes={
            "messaging.system": "kafka", "messaging.operation.type": "publish",
            "messaging.destination.name": topic}) as publish:
        _write(headers, publish)


def _write(headers: list[tuple[str, bytes]], span: Any) -> None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return
    headers[:] = [(k, v) for k, v in headers if k not in (TRACEPARENT, TRACESTATE)]
    headers.append((TRACEPARENT, f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-"
                                 f"{int(ctx.trace_flags):02x}".encode()))
    if ctx.trace_state:
        headers.append((TRACESTATE, ctx.trace_state.to_header().encode()))


def consuming(consumer: str, topic: str, headers: Sequence[tuple[str, bytes]],
              attributes: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
    """The span of one message handled by ``consumer``, child of the record's trace
    (a new trace when the record has none). A no-op when tracing is off."""
    tracer = _state.tracer
    if tracer is None:
        return _NULL
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {k: bytes(v).decode("latin-1") for k, v in headers
               if k in (TRACEPARENT, TRACESTATE) and v is not None}
    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
    return tracer.start_as_current_span(
        f"{consumer} process", context=parent, kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.operation.type": "process",
                    "messaging.destination.name": topic,
                    "messaging.consumer.group.name": consumer, **(attributes or {})})
