"""Prometheus request metrics, labelled by route template (``/v1/batches/{batch_id}``, not every id)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware

__all__ = ["prometheus_config"]


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
