"""Traces: one per request and per batch item, exported over OTLP when the standard ``OTEL_*`` variables ask for it.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, unless
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``; everything else (service name, resource, sampler,
headers, batching) is the SDK's own reading of its variables. Off, every helper here is a constant no-op: no span
objects, no context switches, no ``traceparent`` header (``docs/benchmarks.md`` measures what that costs).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

__all__ = ["Tracing", "export_requested", "trace_id"]

log = logging.getLogger("extractor")

_OFF: AbstractContextManager[Span | None] = contextlib.nullcontext(None)
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def export_requested(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for traces over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINTS)


class Tracing:
    """The process's tracer, or none (tracing off). Built once and handed to what makes spans."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.tracer: Tracer | None = None if provider is None else provider.get_tracer("extractor")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        """An OTLP-exporting tracer if the variables ask for one and the ``otel`` extra is installed, else off."""
        environ = os.environ if environ is None else environ
        if not export_requested(environ):
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set, but not extractor[otel]: no traces are exported")
            return cls()
        named = "OTEL_SERVICE_NAME" in environ or "service.name" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
        provider = SdkTracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: "extractor"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def span(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] = (),
        root: bool = False,
    ) -> AbstractContextManager[Span | None]:
        """A current span around a block (None inside when off); ``root`` starts a new trace."""
        if self.tracer is None:
            return _OFF
        return self.tracer.start_as_current_span(
            name, context=Context() if root else None, kind=kind, attributes=attributes, links=links
        )

    def inject(self, headers: dict[str, str]) -> None:
        """Add the current trace context (``traceparent``, ``tracestate``) to outgoing headers."""
        if self.tracer is not None:
            propagate.inject(headers)

    def carrier(self) -> dict[str, str]:
        """The current trace context as headers, to carry through the queue (empty when off)."""
        headers: dict[str, str] = {}
        self.inject(headers)
        return headers

    def links(self, carrier: Mapping[str, str] | None) -> list[Link]:
        """A link to the span a carrier came from (a batch's submission), if it names one."""
        if self.tracer is None or not carrier:
            return []
        context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        return [Link(context)] if context.is_valid else []

    def shutdown(self) -> None:
        """Flush and stop the exporter (the SDK's provider; the API's has nothing to flush)."""
        stop = getattr(self.provider, "shutdown", None)
        if stop is not None:
            stop()


def trace_id(span: Span | None) -> str | None:
    """The span's trace id as the 32 hex digits that trace viewers search for."""
    if span is None:
        return None
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
