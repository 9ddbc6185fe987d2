"""Prometheus: request metrics labelled by route template (``/v1/batches/{batch_id}``, not every id), and the
``/metrics`` route in the text format."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

__all__ = ["metrics", "prometheus_config"]


class _RouteLabelledMiddleware(PrometheusMiddleware):
    """The stock labels, without parsing the request's full URL first (it did so even with ``group_path``, and
    that was 5% of the CPU of a cache hit)."""

    def _get_default_labels(self, request: Request[Any, Any, Any]) -> dict[str, str | int | float]:
        scope = request.scope
        return {
            "method": scope["method"] if scope["type"] == ScopeType.HTTP else scope["type"],
            "path": scope["path_template"],
            "status_code": 200,
            "app_name": self._config.app_name,
        }


def prometheus_config() -> PrometheusConfig:
    return PrometheusConfig(app_name="extractor", group_path=True, middleware_class=_RouteLabelledMiddleware)


@get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    operation_id="metrics",
    tags=["health"],
    media_type=CONTENT_TYPE_LATEST,
    responses={
        200: ResponseSpec(
            str, description="The Prometheus text format", media_type=CONTENT_TYPE_LATEST, generate_examples=False
        )
    },
    sync_to_thread=False,
)
def metrics() -> Response[bytes]:
    """Litestar's ``PrometheusController``, described as what it answers (it was documented as JSON)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
