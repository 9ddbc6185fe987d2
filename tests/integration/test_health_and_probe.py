"""Readiness, OpenAPI, and the enforcement probe against endpoints that reject or ignore a level."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.errors import UpstreamError
from extractor.extraction.enforcement import EnforcementProber
from extractor.extraction.model import ModelClient
from extractor.vocabulary import EnforcementLevel
from tests.support.fake_model import serve_model


async def test_health_ready_and_openapi(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "model": "ok"}
    spec = (await client.get("/schema/openapi.json")).json()
    assert {"/v1/extract", "/v1/schemas/{name}", "/v1/schemas"} <= spec["paths"].keys()
    assert (await client.get("/schema")).status_code == 200
    assert (await client.get("/metrics")).status_code == 200


@asynccontextmanager
async def _endpoint(behaviour: dict[str, str]) -> AsyncIterator[tuple[ModelClient, list[str]]]:
    """A fake endpoint whose answer per response_format type is: 'enforce', 'ignore' or 'reject'."""
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return httpx2.Response(200, json={"object": "list", "data": [{"id": "m", "object": "model"}]})
        fmt = json.loads(request.content).get("response_format") or {"type": "none"}
        kind = fmt["type"] + ("+schema" if "schema" in fmt else "")
        seen.append(kind)
        action = behaviour.get(kind, "ignore")
        if action == "reject":
            return httpx2.Response(500, json={"error": {"message": "unsupported"}})
        if action.isdigit():
            return httpx2.Response(int(action), json={"error": {"message": "no"}})
        content = '{"probe": "probe-7f3a"}' if action == "enforce" else "Hello there!"
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        return httpx2.Response(
            200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
        )

    with serve_model(handler) as url:
        model = ModelClient(url, "x", max_retries=0)
        try:
            yield model, seen
        finally:
            await model.close()


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ({"json_schema": "enforce"}, EnforcementLevel.JSON_SCHEMA),
        ({"json_schema": "reject", "json_object+schema": "enforce"}, EnforcementLevel.JSON_OBJECT_SCHEMA),
        (
            {"json_schema": "ignore", "json_object+schema": "ignore", "json_object": "enforce"},
            EnforcementLevel.JSON_OBJECT,
        ),
        ({}, EnforcementLevel.PROMPT),
    ],
)
async def test_probe_picks_strongest_enforced_level_once(
    redis: Redis, behaviour: dict[str, str], expected: EnforcementLevel
) -> None:
    async with _endpoint(behaviour) as (model, seen):
        prober = EnforcementProber(redis, model)
        assert await prober.level() == expected
        calls = len(seen)
        assert await EnforcementProber(redis, model).level() == expected, "remembered in Redis"
        assert len(seen) == calls


async def test_redis_down_is_503_with_retry_after_and_not_ready(fake_model: Any) -> None:
    from tests.support.app import app_client, make_settings

    async with app_client(make_settings(redis_url="redis://127.0.0.1:1/0"), fake_model.handler) as client:
        response = await client.get("/v1/schemas")
        assert response.status_code == 503
        assert response.json()["type"] == "store-unavailable"
        assert response.headers["retry-after"] == "2"
        extract = await client.post("/v1/extract", json={"schema": "receipt", "text": "x"})
        assert extract.status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["model"] == "ok"


@pytest.mark.parametrize(
    "behaviour",
    [
        {"json_schema": "401"},
        {"json_schema": "reject", "json_object+schema": "reject", "json_object": "reject", "none": "reject"},
    ],
)
async def test_probe_never_remembers_an_answer_that_is_not_about_the_level(
    redis: Redis, behaviour: dict[str, str]
) -> None:
    async with _endpoint(behaviour) as (model, _):
        with pytest.raises(UpstreamError):
            await EnforcementProber(redis, model).level()
    assert await redis.keys("extractor:probe:*") == []


async def test_metrics_are_labelled_by_route_template(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/v1/batches/0123456789abcdef0123456789abcdef")).status_code == 404
    assert (await client.get("/v1/schemas/receipt")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'path="/v1/batches/{batch_id}",status_code="404"' in metrics
    assert 'path="/v1/schemas/{name}",status_code="200"' in metrics
    assert "0123456789abcdef" not in metrics, "one series per route, not per id"


async def test_openapi_documents_the_problem_answers(client: AsyncTestClient[Any]) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    extract = spec["paths"]["/v1/extract"]["post"]["responses"]
    assert extract["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ExtractionResult")
    assert {"400", "401", "404", "413", "422", "502", "503", "504"} <= extract.keys()
    problem = extract["422"]["content"]["application/problem+json"]["schema"]["$ref"]
    assert problem.endswith("/Problem")
    assert {"type", "title", "status", "detail"} <= set(spec["components"]["schemas"]["Problem"]["required"])
    assert "409" in spec["paths"]["/v1/schemas/{name}"]["put"]["responses"]
    assert "422" in spec["paths"]["/v1/batches"]["post"]["responses"]


async def test_openapi_documents_the_batch_body_as_the_service_reads_it(client: AsyncTestClient[Any]) -> None:
    """The body is read by the handler itself (JSON or NDJSON); the documented schemas must match what it accepts."""
    spec = (await client.get("/schema/openapi.json")).json()
    content = spec["paths"]["/v1/batches"]["post"]["requestBody"]["content"]
    batch = Draft202012Validator(content["application/json"]["schema"])
    line = Draft202012Validator(content["application/x-ndjson"]["schema"])
    body = {"schema": "receipt", "documents": [{"id": "a", "text": "TOTAL 3.70"}], "options": {"grounding": "strict"}}
    assert batch.is_valid(body)
    assert (await client.post("/v1/batches", json=body)).status_code == 202
    for wrong in ({"schema": "receipt", "documents": []}, {**body, "extra": 1}, {"documents": body["documents"]}):
        assert not batch.is_valid(wrong)
        assert (await client.post("/v1/batches", json=wrong)).status_code == 400, wrong
    assert line.is_valid({"id": "a", "text": "x"})
    assert not line.is_valid({"id": "", "text": "x"})
    assert "$defs" not in json.dumps(content), "no dangling #/$defs references inside the OpenAPI document"
