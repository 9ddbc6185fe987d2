"""The parts of telemetry that need no service: label bounds, the price table, the OTEL_* switch, log formats."""

from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from extractor.extraction.empty import empty_reason
from extractor.extraction.grounding import ground
from extractor.settings import MetricsSettings, Settings
from extractor.telemetry.labels import OTHER, BoundedLabel
from extractor.telemetry.logs import BatchingHandler, JsonFormatter, log_extraction, resolved_format
from extractor.telemetry.metrics import ExtractionMetrics, endpoint_label
from extractor.telemetry.report import ExtractionReport
from extractor.telemetry.tracing import Tracing, export_requested


def test_a_label_keeps_the_first_values_it_sees_and_folds_the_rest_into_other() -> None:
    label = BoundedLabel(limit=2)
    assert [label(v) for v in ("acme", "globex", "initech", "acme", "umbrella")] == [
        "acme",
        "globex",
        OTHER,
        "acme",
        OTHER,
    ]


def test_an_allow_list_is_the_only_values_a_label_takes() -> None:
    label = BoundedLabel(["acme"], limit=100)
    assert [label(v) for v in ("globex", "acme")] == [OTHER, "acme"]


def test_cost_comes_from_the_price_table_and_an_unlisted_model_has_none() -> None:
    prices = MetricsSettings.model_validate({"prices": {"priced-model": {"input": 0.15, "output": 0.6}}})
    metrics = ExtractionMetrics(prices)
    priced, unpriced = ExtractionReport(), ExtractionReport()
    priced.resolve("unit_cost_schema@1", "priced-model")
    unpriced.resolve("unit_cost_schema@1", "unpriced-model")
    metrics.tokens(priced, 1_000_000, 2_000_000)
    metrics.tokens(unpriced, 1_000_000, 2_000_000)
    assert priced.cost == pytest.approx(0.15 + 1.2)
    assert unpriced.cost is None
    labels = {"tenant": "", "schema": "unit_cost_schema"}
    assert REGISTRY.get_sample_value("extractor_cost_total", {**labels, "model": "priced-model"}) == pytest.approx(1.35)
    assert REGISTRY.get_sample_value("extractor_cost_total", {**labels, "model": "unpriced-model"}) is None


def test_a_schema_that_did_not_resolve_gets_no_label_of_its_own() -> None:
    metrics = ExtractionMetrics(MetricsSettings(max_label_values=1))
    report = ExtractionReport(tenant="unit-unresolved", schema="typed-by-anyone")
    report.status, report.reason = "failed", "schema-not-found"
    metrics.result(report)
    labels = {"tenant": "unit-unresolved", "status": "failed", "reason": "schema-not-found"}
    assert REGISTRY.get_sample_value("extractor_extractions_total", {**labels, "schema": OTHER}) == 1
    assert REGISTRY.get_sample_value("extractor_extractions_total", {**labels, "schema": "typed-by-anyone"}) is None


def test_an_endpoint_label_never_carries_credentials_or_a_path() -> None:
    assert endpoint_label("https://user:secret@api.example.com:8443/v1") == "https://api.example.com:8443"
    assert endpoint_label("http://127.0.0.1/v1/") == "http://127.0.0.1"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "extractor"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_are_exported_only_when_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert export_requested(environ) is on
    tracing = Tracing.from_env(environ)
    try:
        assert tracing.enabled is on
        assert isinstance(tracing.provider, TracerProvider) is on
    finally:
        tracing.shutdown()


def test_tracing_off_makes_no_span_and_carries_no_context() -> None:
    tracing = Tracing()
    with tracing.span("anything") as span:
        assert span is None
        assert tracing.carrier() == {}
    assert tracing.links({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) == []


def test_a_carried_context_becomes_a_link() -> None:
    tracing = Tracing(TracerProvider())
    with tracing.span("submit") as span:
        assert span is not None
        carrier = tracing.carrier()
    [link] = tracing.links(carrier)
    assert link.context.span_id == span.get_span_context().span_id
    assert tracing.links({}) == []


def test_empty_says_which_rule_made_it_empty() -> None:
    assert empty_reason({"a": None, "b": ""}, None) == "no_values"
    assert empty_reason({"a": "Zurich"}, ground({"a": "Zurich"}, "a letter from Geneva")) == "not_grounded"
    assert empty_reason({"a": "Geneva"}, ground({"a": "Geneva"}, "a letter from Geneva")) is None
    assert empty_reason({"a": True}, ground({"a": True}, "anything")) is None


def test_auto_format_is_text_on_a_terminal_and_json_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert resolved_format(Settings(log_format="auto")) == "text"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert resolved_format(Settings(log_format="auto")) == "json"
    assert resolved_format(Settings(log_format="text")) == "text"


def test_a_plain_log_line_in_json_carries_the_current_trace_id() -> None:
    tracing = Tracing(TracerProvider())
    record = logging.LogRecord("extractor", logging.WARNING, __file__, 1, "Redis slow: %s", ("1 s",), None)
    with tracing.span("request") as span:
        assert span is not None
        entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Redis slow: 1 s"
    assert entry["level"] == "warning"
    assert entry["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_an_extraction_line_reads_as_text_too(caplog: pytest.LogCaptureFixture) -> None:
    report = ExtractionReport(tenant="acme", schema="receipt@2", status="empty", reason="not_grounded")
    with caplog.at_level(logging.INFO, logger="extractor.requests"):
        log_extraction("extract", report, 0.0125)
    message = caplog.records[-1].getMessage()
    assert message.startswith("extract tenant=acme schema=receipt@2 status=empty reason=not_grounded")
    assert "duration_ms=12.5" in message
    assert "trace_id" not in message  # nothing to say: no trace


def test_the_price_table_and_label_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTOR_METRICS__PRICES", '{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}')
    monkeypatch.setenv("EXTRACTOR_METRICS__TENANTS", '["acme", "globex"]')
    monkeypatch.setenv("EXTRACTOR_LOG_FORMAT", "json")
    settings = Settings()
    assert settings.metrics.prices["gpt-4o-mini"].output == 0.6
    assert settings.metrics.tenants == ["acme", "globex"]
    assert settings.log_format == "json"
    assert settings.log_documents is False


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("extractor", level, __file__, 1, message, (), None)


def test_lines_are_written_in_batches_in_order_and_all_at_close() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval_s=60)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for n in range(3):
        handler.emit(record(str(n)))
    assert stream.getvalue() == ""  # the next batch is a minute away
    handler.close()
    assert stream.getvalue() == "0\n1\n2\n"


def test_an_error_is_written_at_once() -> None:
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval_s=60)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    try:
        handler.emit(record("before"))
        handler.emit(record("it broke", logging.ERROR))
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue() == "INFO before\nERROR it broke\n"
    finally:
        handler.close()
