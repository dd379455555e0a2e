"""Traces (OpenTelemetry): one trace from an HTTP request through the events it causes.

The W3C `traceparent` of the request (taken from its header, or begun here) is written into
each event's envelope, goes out as a Kafka header, and is the parent of the consumer's span
in the next service; events that consumer writes carry its span on. Spans are exported only
when `FRONTLINE_OTLP_ENDPOINT` names an OTLP/HTTP collector; otherwise the tracer records
nothing and only passes on a `traceparent` it was given.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_provider: trace.TracerProvider | None = None


def install(provider: trace.TracerProvider | None) -> None:
    """Use this provider for Frontline's spans (None: back to the process's default)."""
    global _provider
    _provider = provider


def configure(endpoint: str, service: str) -> None:
    """Export to an OTLP/HTTP collector at `endpoint` (e.g. http://otel:4318/v1/traces)."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    install(provider)


def tracer() -> trace.Tracer:
    return (_provider or trace.get_tracer_provider()).get_tracer("frontline")


def current() -> str | None:
    """The current span as a `traceparent`, or None when there is no valid one."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span(name: str, *, parent: str | None, kind: SpanKind, **attributes: Any) -> Iterator[Span]:
    """A span, current inside the block, whose parent is the given `traceparent`."""
    context = _propagator.extract({"traceparent": parent}) if parent else None
    with tracer().start_as_current_span(
        name, context=context, kind=kind, attributes=attributes
    ) as s:
        yield s
