"""The HTTP side of tracing: Litestar's OpenTelemetry plugin, when tracing is on, makes each request's server
span (continuing a caller's ``traceparent``); a hook names the span by its route once the route is known."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.plugins import InitPlugin
from litestar.types import BeforeRequestHookHandler, Scope
from opentelemetry import trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

from extractor.telemetry.tracing import Tracing

__all__ = ["tracing_hooks"]

_UNTRACED = ["^/metrics", "^/healthz", "^/readyz"]
"""Scraped and probed every few seconds: a trace each would bury the requests that matter."""


def _method_only(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's first name: the method alone. The plugin runs before routing, and a raw path (a batch id in it)
    would make every span name unique; ``_name_by_route`` renames it."""
    return str(scope.get("method", "HTTP")), {}


def _name_by_route(request: Request[Any, Any, Any]) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        route = request.scope.get("path_template", request.url.path)
        span.update_name(f"{request.method} {route}")
        span.set_attribute(HTTP_ROUTE, route)


def tracing_hooks(tracing: Tracing) -> tuple[list[InitPlugin], BeforeRequestHookHandler | None]:
    """The plugin and the before-request hook to give Litestar: none of either when tracing is off."""
    if tracing.provider is None:
        return [], None
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    config = OpenTelemetryConfig(
        tracer_provider=tracing.provider,
        scope_span_details_extractor=_method_only,
        exclude=_UNTRACED,
        exclude_spans=["receive", "send"],
    )
    return [OpenTelemetryPlugin(config)], _name_by_route
