"""Prometheus metrics that answer cost questions: tokens and their estimated cost by tenant, schema and model,
model-call latency, cache hits, extractions by status and reason, repairs, re-asks, and the enforcement level of
each model endpoint. They are on the service's ``/metrics`` (and on a worker's ``jobs.metrics_port``).

Label values are bounded (``labels.BoundedLabel``): tenants, schemas and models each keep at most
``metrics.max_label_values`` values (or an allow-list), the rest count as ``other``; every other label takes
values from a fixed set (statuses, error types, repair kinds, enforcement levels).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from extractor.settings import MetricsSettings
from extractor.telemetry.labels import OTHER, BoundedLabel
from extractor.telemetry.report import ExtractionReport

__all__ = [
    "CACHE_LOOKUPS",
    "COST",
    "ENFORCEMENT",
    "EXTRACTIONS",
    "MODEL_CALL_SECONDS",
    "REASKS",
    "REPAIRS",
    "TOKENS",
    "ExtractionMetrics",
    "endpoint_label",
]

TOKENS = Counter(
    "extractor_tokens",
    "Model tokens spent, by tenant, schema, model and type (input, output).",
    ["tenant", "schema", "model", "type"],
)
COST = Counter(
    "extractor_cost",
    "Estimated cost of the model tokens spent, from the price table (EXTRACTOR_METRICS__PRICES, per million tokens); "
    "calls to a model it does not list are not counted.",
    ["tenant", "schema", "model"],
)
MODEL_CALL_SECONDS = Histogram(
    "extractor_model_call_duration_seconds",
    "One model call as the pipeline waits for it (the client's network retries included), by outcome: ok or the "
    "error type.",
    ["model", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0),
)
CACHE_LOOKUPS = Counter(
    "extractor_cache_lookups", "Result cache lookups, by result (hit, miss).", ["tenant", "schema", "result"]
)
EXTRACTIONS = Counter(
    "extractor_extractions",
    "Extractions by status (ok, empty, failed) and reason: why empty (no_values, not_grounded, no_presence) or the "
    "error type of a failure; none for ok. A batch item's retried tries count each.",
    ["tenant", "schema", "status", "reason"],
)
REPAIRS = Counter(
    "extractor_repairs",
    "Repairs of model output by kind: parse (broken JSON mended), coerce (a value converted to its schema type), "
    "grounding (a value not in the text nulled), invalid_after_grounding (a field left invalid by that, nulled).",
    ["schema", "kind"],
)
REASKS = Counter(
    "extractor_reasks",
    "Model calls that re-ask, by why the answer before failed (not_json, invalid).",
    ["schema", "reason"],
)
ENFORCEMENT = Gauge(
    "extractor_enforcement_level",
    "1 for the output enforcement level in use at each model endpoint, else 0.",
    ["endpoint", "level"],
)


def endpoint_label(base_url: str) -> str:
    """A model endpoint as ``scheme://host:port``: no path, and never the credentials a URL may carry."""
    parts = urllib.parse.urlsplit(base_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


class ExtractionMetrics:
    """Records the metrics above from extraction reports, with bounded labels and the price table."""

    def __init__(self, settings: MetricsSettings | None = None) -> None:
        settings = settings or MetricsSettings()
        self._tenant = BoundedLabel(settings.tenants, settings.max_label_values)
        self._schema = BoundedLabel(settings.schemas, settings.max_label_values)
        self._model = BoundedLabel((), settings.max_label_values)
        self._prices = settings.prices
        self._levels: dict[str, str] = {}
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """The metric's series of these labels, looked up once: prometheus_client's own lookup validates and
        locks on every call. Bounded labels bound this table too."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _schema_of(self, report: ExtractionReport) -> str:
        """A schema that did not resolve (unknown, retired) takes no label of its own: anyone can name one."""
        return self._schema(report.schema_name) if report.resolved else OTHER

    def tokens(self, report: ExtractionReport, input_tokens: int, output_tokens: int) -> None:
        """Tokens of one model call, and their cost when the price table lists the model."""
        report.input_tokens += input_tokens
        report.output_tokens += output_tokens
        labels = (self._tenant(report.tenant), self._schema_of(report), self._model(report.model))
        self._child(TOKENS, *labels, "input").inc(input_tokens)
        self._child(TOKENS, *labels, "output").inc(output_tokens)
        price = self._prices.get(report.model)
        if price is not None:
            cost = (input_tokens * price.input + output_tokens * price.output) / 1_000_000
            self._child(COST, *labels).inc(cost)
            report.cost = (report.cost or 0.0) + cost

    def model_call(self, model: str, outcome: str, seconds: float) -> None:
        self._child(MODEL_CALL_SECONDS, self._model(model), outcome).observe(seconds)

    def cache(self, report: ExtractionReport, *, hit: bool) -> None:
        result = "hit" if hit else "miss"
        self._child(CACHE_LOOKUPS, self._tenant(report.tenant), self._schema_of(report), result).inc()

    def result(self, report: ExtractionReport) -> None:
        """The extraction's outcome; nothing for one that did not end (cancelled)."""
        if report.status:
            tenant, schema = self._tenant(report.tenant), self._schema_of(report)
            self._child(EXTRACTIONS, tenant, schema, report.status, report.reason or "none").inc()

    def repairs(self, report: ExtractionReport, kind: str, count: int) -> None:
        if count:
            self._child(REPAIRS, self._schema_of(report), kind).inc(count)

    def reask(self, report: ExtractionReport, reason: str) -> None:
        self._child(REASKS, self._schema_of(report), reason).inc()

    def enforcement(self, endpoint: str, level: str) -> None:
        """The endpoint's level is 1, the level it had before (a new probe's answer) back to 0."""
        previous = self._levels.get(endpoint)
        if previous != level:
            if previous is not None:
                ENFORCEMENT.labels(endpoint, previous).set(0)
            ENFORCEMENT.labels(endpoint, level).set(1)
            self._levels[endpoint] = level
