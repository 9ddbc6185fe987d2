"""Traces, cost metrics and log lines as an operator sees them: spans in the SDK's in-memory exporter, ``/metrics``
as Prometheus scrapes it, the request and batch item log lines. Real Redis (db 11: other suites flush 14 and 15),
the model faked on a real loopback server."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from extractor.app import create_app
from extractor.settings import Settings
from extractor.telemetry.logs import JsonFormatter
from extractor.telemetry.tracing import Tracing
from tests.support.app import make_settings
from tests.support.fake_model import FakeModel, serve_model
from tests.support.redis_db import flushed_db

REDIS_URL = "redis://127.0.0.1:6379/11"
TEXT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n"
GOOD = {"merchant": "ACME Market", "date": "2024-03-05", "total": 3.7, "currency": "EUR", "items": []}
NOTHING = {"merchant": None, "date": None, "total": None, "currency": None, "items": None}
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRICES = {"fake-model": {"input": 1.0, "output": 2.0}}


class HeaderModel:
    """The scripted fake model, also keeping the headers of each chat call."""

    def __init__(self, model: FakeModel) -> None:
        self.model = model
        self.headers: list[dict[str, str]] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/chat/completions"):
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return self.model.handler(request)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(REDIS_URL) as client:
        yield client


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def model() -> HeaderModel:
    return HeaderModel(FakeModel())


class Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    """The request and batch item log lines, as records (the app's own logging config replaces the root's)."""
    records: list[logging.LogRecord] = []
    handler = Keep(records)
    logger = logging.getLogger("extractor.requests")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"redis_url": REDIS_URL, "jobs": {"retry_base_s": 0.01, "heartbeat_s": 2, "sweep_s": 1}}
    return make_settings(**(base | overrides))


@asynccontextmanager
async def service(
    model: HeaderModel, exporter: InMemorySpanExporter | None, **overrides: Any
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app with its model on a loopback port; traced into ``exporter``, or with tracing off when it is None."""
    tracing = Tracing()
    if exporter is not None:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = Tracing(provider)
    with serve_model(model.handler) as url:
        app = create_app(settings(model_base_url=url, **overrides), tracing=tracing)
        async with AsyncTestClient(app) as client:
            yield client


async def extract(client: AsyncTestClient[Any], text: str = TEXT, **headers: str) -> Any:
    response = await client.post("/v1/extract", json={"schema": "receipt", "text": text}, headers=headers)
    assert response.status_code in (200, 502), response.text
    return response.json()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [span for span in spans if span.name == name]
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def scrape(client: AsyncTestClient[Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = (await client.get("/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_one_extraction_is_one_trace_of_its_steps(
    redis: Redis, model: HeaderModel, exporter: InMemorySpanExporter
) -> None:
    model.model.reply(GOOD, tokens=12)
    async with service(model, exporter) as client:
        caller = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
        body = await extract(client, traceparent=caller)
        await client.get("/metrics")  # scraped every few seconds: not traced
    assert body["status"] == "ok"
    spans = exporter.get_finished_spans()
    assert not [span.name for span in spans if span.name.startswith("GET")]
    assert {span.context.trace_id for span in spans} == {int(CALLER_TRACE, 16)}  # the caller's trace goes on

    server = by_name(spans, "POST /v1/extract")
    assert server.kind == SpanKind.SERVER
    assert parent_of(server) == 0x00F067AA0BA902B7
    extract_span = by_name(spans, "extractor.extract")
    assert parent_of(extract_span) == server.context.span_id
    steps: tuple[str, ...] = ("extractor.schema", "extractor.cache", "extractor.enforcement", "chat fake-model")
    steps += ("extractor.repair", "extractor.validate", "extractor.grounding", "extractor.cache.write")
    for name in steps:
        assert parent_of(by_name(spans, name)) == extract_span.context.span_id, name
    attributes = dict(extract_span.attributes or {})
    assert attributes["extractor.tenant"] == "default"
    assert attributes["extractor.schema"] == "receipt@1"
    assert attributes["extractor.status"] == "ok"
    assert attributes["extractor.enforcement"] == "json_schema"
    assert attributes["extractor.attempts"] == 1
    assert attributes["extractor.cached"] is False

    chat = by_name(spans, "chat fake-model")
    assert chat.kind == SpanKind.CLIENT
    genai = dict(chat.attributes or {})
    assert genai["gen_ai.operation.name"] == "chat"
    assert genai["gen_ai.request.model"] == "fake-model"
    assert genai["gen_ai.response.model"] == "fake-model"
    assert genai["gen_ai.usage.input_tokens"] == 100
    assert genai["gen_ai.usage.output_tokens"] == 12
    assert genai["gen_ai.response.finish_reasons"] == ("stop",)
    assert genai["server.address"] == "127.0.0.1"
    # the model endpoint was told which span called it
    assert model.headers[0]["traceparent"] == f"00-{CALLER_TRACE}-{chat.context.span_id:016x}-01"


async def test_an_empty_result_and_a_failure_say_why_on_their_span(
    redis: Redis, model: HeaderModel, exporter: InMemorySpanExporter
) -> None:
    model.model.reply(NOTHING).fail(500)
    async with service(model, exporter) as client:
        assert (await extract(client))["status"] == "empty"
        assert (await extract(client, text="another receipt"))["type"] == "upstream-unavailable"
    first, second = [span for span in exporter.get_finished_spans() if span.name == "extractor.extract"]
    assert (first.attributes or {})["extractor.empty_reason"] == "no_values"
    assert (second.attributes or {})["extractor.status"] == "failed"
    assert (second.attributes or {})["error.type"] == "upstream-unavailable"
    assert not second.status.is_ok
    failed_call = [span for span in exporter.get_finished_spans() if span.name == "chat fake-model"][-1]
    assert (failed_call.attributes or {})["error.type"] == "upstream-unavailable"


async def test_a_batch_item_is_a_trace_of_its_own_linked_to_the_submission(
    redis: Redis, model: HeaderModel, exporter: InMemorySpanExporter
) -> None:
    model.model.reply(GOOD)
    async with service(model, exporter) as client:
        submitted = await client.post(
            "/v1/batches", json={"schema": "receipt", "documents": [{"id": "a", "text": TEXT}]}
        )
        assert submitted.status_code == 202, submitted.text
        results = await client.get(f"/v1/batches/{submitted.json()['batch_id']}/results", params={"wait": "true"})
        assert json.loads(results.text)["status"] == "ok"
    spans = exporter.get_finished_spans()
    submission = by_name(spans, "POST /v1/batches")
    item = by_name(spans, "extractor.batch.item")
    assert item.parent is None  # a root: one trace per item
    assert item.context.trace_id != submission.context.trace_id
    assert [link.context.span_id for link in item.links] == [submission.context.span_id]
    assert [link.context.trace_id for link in item.links] == [submission.context.trace_id]
    assert parent_of(by_name(spans, "extractor.extract")) == item.context.span_id
    assert by_name(spans, "chat fake-model").context.trace_id == item.context.trace_id
    assert (item.attributes or {})["extractor.batch.index"] == 0


async def test_tracing_off_sends_no_traceparent_and_makes_no_spans(
    redis: Redis, model: HeaderModel, lines: list[logging.LogRecord]
) -> None:
    model.model.reply(GOOD)
    async with service(model, None) as client:
        await extract(client, traceparent=f"00-{CALLER_TRACE}-00f067aa0ba902b7-01")
    assert "traceparent" not in model.headers[0]
    [line] = lines
    assert line.__dict__["fields"]["trace_id"] is None


async def test_tokens_cost_cache_and_statuses_are_counted(redis: Redis, model: HeaderModel) -> None:
    model.model.reply(GOOD, tokens=10).reply(NOTHING, tokens=4)
    async with service(model, None, metrics={"prices": PRICES}) as client:
        before = await scrape(client)
        await extract(client)  # a miss: 100 input and 10 output tokens
        await extract(client)  # the same document: a hit, no tokens
        await extract(client, text="a letter about nothing")  # empty: no value at all
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    who = {"tenant": "default", "schema": "receipt", "model": "fake-model"}
    assert delta("extractor_tokens_total", **who, type="input") == 200
    assert delta("extractor_tokens_total", **who, type="output") == 14
    assert delta("extractor_cost_total", **who) == pytest.approx((200 * 1.0 + 14 * 2.0) / 1e6)
    place = {"tenant": "default", "schema": "receipt"}
    assert delta("extractor_cache_lookups_total", **place, result="miss") == 2
    assert delta("extractor_cache_lookups_total", **place, result="hit") == 1
    assert delta("extractor_extractions_total", **place, status="ok", reason="none") == 2
    assert delta("extractor_extractions_total", **place, status="empty", reason="no_values") == 1
    assert delta("extractor_model_call_duration_seconds_count", model="fake-model", outcome="ok") == 2
    levels = [labels for (name, labels), level in after.items() if name == "extractor_enforcement_level" and level == 1]
    assert ("level", "json_schema") in {item for labels in levels for item in labels}


async def test_repairs_reasks_and_failures_are_counted_and_unpriced_models_cost_nothing(
    redis: Redis, model: HeaderModel
) -> None:
    model.model.reply('```json\n{"merchant": "ACME Market", "total": "3.70",}\n```').reply({"total": "abc"})
    model.model.reply(GOOD).fail(500)
    prices = {"another-model": {"input": 1.0, "output": 1.0}}
    async with service(model, None, metrics={"prices": prices}) as client:
        before = await scrape(client)
        assert (await extract(client))["status"] == "ok"  # fenced, a trailing comma, "3.70" as a string
        assert (await extract(client, text="ACME Market again, TOTAL 3.70 EUR"))["attempts"] == 2  # invalid first
        assert (await extract(client, text="third"))["type"] == "upstream-unavailable"
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("extractor_repairs_total", schema="receipt", kind="parse") == 2  # the fence and the comma
    assert delta("extractor_repairs_total", schema="receipt", kind="coerce") == 1
    assert delta("extractor_reasks_total", schema="receipt", reason="invalid") == 1
    failed = {"tenant": "default", "schema": "receipt", "status": "failed", "reason": "upstream-unavailable"}
    assert delta("extractor_extractions_total", **failed) == 1
    assert delta("extractor_model_call_duration_seconds_count", model="fake-model", outcome="upstream-unavailable") == 1
    assert delta("extractor_cost_total", tenant="default", schema="receipt", model="fake-model") == 0
    assert delta("extractor_tokens_total", tenant="default", schema="receipt", model="fake-model", type="input") == 300


async def test_one_log_line_per_request_without_the_document(
    redis: Redis, model: HeaderModel, exporter: InMemorySpanExporter, lines: list[logging.LogRecord]
) -> None:
    model.model.reply(GOOD, tokens=7)
    async with service(model, exporter, metrics={"prices": PRICES}) as client:
        await extract(client)
    [record] = lines
    entry = json.loads(JsonFormatter().format(record))
    trace_id = f"{by_name(exporter.get_finished_spans(), 'extractor.extract').context.trace_id:032x}"
    expected = {"event": "extract", "trace_id": trace_id, "tenant": "default", "schema": "receipt@1", "status": "ok"}
    assert expected.items() <= entry.items()
    assert (entry["input_tokens"], entry["output_tokens"], entry["attempts"]) == (100, 7, 1)
    assert entry["cost"] == pytest.approx((100 + 14) / 1e6)
    assert entry["duration_ms"] > 0
    assert "ACME" not in json.dumps(entry)
    assert "text" not in entry


async def test_document_text_is_logged_only_when_asked(
    redis: Redis, model: HeaderModel, lines: list[logging.LogRecord]
) -> None:
    model.model.reply(GOOD)
    async with service(model, None, log_documents=True) as client:
        await extract(client)
    assert json.loads(JsonFormatter().format(lines[0]))["text"] == TEXT


async def test_one_log_line_per_batch_item(redis: Redis, lines: list[logging.LogRecord]) -> None:
    def answer(request: httpx2.Request) -> httpx2.Response:  # nothing for the document that holds nothing
        scripted = FakeModel().reply(NOTHING if b"nothing here" in request.content else GOOD)
        return scripted.handler(request)

    model = HeaderModel(FakeModel())
    model.model.handler = answer  # type: ignore[method-assign]
    documents = [{"id": "first", "text": TEXT}, {"id": "second", "text": "nothing here"}]
    async with service(model, None) as client:
        submitted = await client.post("/v1/batches", json={"schema": "receipt", "documents": documents})
        await client.get(f"/v1/batches/{submitted.json()['batch_id']}/results", params={"wait": "true"})
    items = sorted((json.loads(JsonFormatter().format(r)) for r in lines), key=lambda entry: entry["index"])
    assert [(e["event"], e["document_id"], e["status"]) for e in items] == [
        ("batch_item", "first", "ok"),
        ("batch_item", "second", "empty"),
    ]
    assert items[1]["reason"] == "no_values"
    assert {entry["batch_id"] for entry in items} == {submitted.json()["batch_id"]}
    assert "ACME" not in json.dumps(items)


async def test_with_an_otlp_endpoint_in_the_environment_spans_reach_the_collector(
    redis: Redis, model: HeaderModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports: list[httpx2.Request] = []

    def collector(request: httpx2.Request) -> httpx2.Response:
        exports.append(request)
        return httpx2.Response(200, content=b"", headers={"content-type": "application/x-protobuf"})

    model.model.reply(GOOD)
    with serve_model(collector) as collector_url:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url.removesuffix("/v1"))
        monkeypatch.setenv("OTEL_SERVICE_NAME", "extractor-under-test")
        with serve_model(model.handler) as url:
            async with AsyncTestClient(create_app(settings(model_base_url=url))) as client:
                assert (await extract(client))["status"] == "ok"
        # the app's shutdown flushed the exporter
    [export] = [request for request in exports if request.url.path == "/v1/traces"]
    assert export.headers["content-type"] == "application/x-protobuf"
    sent = ExportTraceServiceRequest.FromString(export.content)
    [resource] = sent.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    names = {span.name for scope in resource.scope_spans for span in scope.spans}
    assert service == "extractor-under-test"
    assert {"POST /v1/extract", "extractor.extract", "chat fake-model"} <= names
