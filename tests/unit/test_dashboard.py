"""The Grafana dashboard in ``deploy/grafana`` queries only metrics that the service's ``/metrics`` exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from extractor.app import create_app
from extractor.settings import Settings
from extractor.telemetry.tracing import Tracing

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "extractor.json"
_METRIC = re.compile(r"\b(?:extractor|litestar)_[a-z_]+\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def queries(node: Any) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        if isinstance(node.get("definition"), str):
            found.append(node["definition"])
        return found + [q for value in node.values() for q in queries(value)]
    if isinstance(node, list):
        return [q for item in node for q in queries(item)]
    return []


def exposed() -> set[str]:
    """The sample names ``/metrics`` exposes, from the real app (no lifespan: /metrics needs no Redis or model)."""
    app = create_app(
        Settings(redis_url="redis://127.0.0.1:1/0", model_base_url="http://127.0.0.1:1/v1"), tracing=Tracing()
    )
    client = TestClient(app)
    client.get("/metrics")  # Litestar makes its request metrics on the first request
    text = client.get("/metrics").text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        base = family.name.removesuffix("_total")
        names.update(base + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    wanted = {name for expr in queries(dashboard) for name in _METRIC.findall(expr)}
    assert len(wanted) > 10  # the dashboard was read
    assert wanted - exposed() == set()
