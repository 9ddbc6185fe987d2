"""Hostile input and hung dependencies: no request freezes the service, crashes it (5xx) or waits without bound.

The app runs in-process with its model faked at the transport; Redis is the suite's real one (database 1)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.app import create_app
from extractor.jobs.lineage import new_batch_id
from extractor.limit_settings import LimitSettings, TenantLimits
from extractor.settings import Settings
from tests.support.app import app_client, make_settings, serve_app
from tests.support.fake_model import FakeModel, Handler, serve_model
from tests.support.redis_db import HOSTILE_URL, flushed_db

REDOS = "^(a|a)*$"
EVIL = "a" * 40 + "!"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(HOSTILE_URL) as client:
        yield client


def _settings(**overrides: Any) -> Settings:
    return make_settings(redis_url=HOSTILE_URL, **overrides)


@pytest.fixture
async def client(redis: Redis) -> AsyncIterator[AsyncTestClient[Any]]:
    model = FakeModel().reply({"a": EVIL})
    async with app_client(_settings(), model.handler) as test_client:
        yield test_client


def _wide_schema(properties: int) -> dict[str, Any]:
    return {"type": "object", "properties": {f"p{i}": {"type": "string", "pattern": REDOS} for i in range(properties)}}


async def _slowest_healthz(client: AsyncTestClient[Any], work: list[Any]) -> float:
    """The slowest /healthz answer while ``work`` runs."""
    slowest = 0.0
    pending = {asyncio.ensure_future(w) for w in work}
    while pending:
        started = time.perf_counter()
        assert (await client.get("/healthz")).status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
        _, pending = await asyncio.wait(pending, timeout=0.02)
    return slowest


async def test_healthz_answers_while_hostile_schemas_and_answers_are_processed(
    client: AsyncTestClient[Any],
) -> None:
    redos = {"json_schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": REDOS}}}}
    hostile = [
        client.put("/v1/schemas/redos", json={**redos, "examples": [{"a": EVIL}]}),
        *(client.put(f"/v1/schemas/wide{i}", json={"json_schema": _wide_schema(2000)}) for i in range(8)),
    ]
    assert await _slowest_healthz(client, hostile) < 0.1
    assert (await client.put("/v1/schemas/redos", json=redos)).status_code == 201
    answers = [client.post("/v1/extract", json={"schema": "redos", "text": EVIL, "options": {"cache": False}})]
    assert await _slowest_healthz(client, answers * 4) < 0.1


async def test_a_catastrophic_pattern_is_a_refusal_not_a_stall(client: AsyncTestClient[Any]) -> None:
    body = {"json_schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": REDOS}}}}
    started = time.perf_counter()
    answer = await client.put("/v1/schemas/redos", json={**body, "examples": [{"a": EVIL}]})
    assert answer.status_code == 422
    assert "took too long" in answer.json()["detail"]
    assert time.perf_counter() - started < 2


def _nested(levels: int, opener: str = "[", closer: str = "]") -> str:
    return opener * levels + closer * levels


def _deep_schema(levels: int, keyword: str) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object"}
    root = node
    for _ in range(levels):
        child: dict[str, Any] = {"type": "object"}
        node[keyword] = {"x": child} if keyword == "properties" else [child]
        node = child
    return {"type": "object", "properties": {"a": root}}


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "/v1/extract", _nested(10_000), 400),
        ("PUT", "/v1/schemas/deep", _nested(10_000, '{"a":', "}").replace("}}", "1}}", 1), 400),
        ("PUT", "/v1/schemas/deep", json.dumps({"json_schema": _deep_schema(20, "properties")}), 422),
        ("PUT", "/v1/schemas/deep", json.dumps({"json_schema": _deep_schema(20, "allOf")}), 422),
        ("PUT", "/v1/schemas/deep", json.dumps({"json_schema": _deep_schema(400, "anyOf")}), 400),
        ("POST", "/v1/extract", json.dumps({"schema": "receipt", "text": "x", "options": {"cache": 0}}), 400),
    ],
)
async def test_deep_or_wrong_json_is_a_4xx(
    client: AsyncTestClient[Any], method: str, path: str, content: str, status: int
) -> None:
    answer = await client.request(method, path, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


async def test_a_deep_options_query_on_an_ndjson_batch_is_a_400(client: AsyncTestClient[Any]) -> None:
    answer = await client.post(
        "/v1/batches",
        params={"schema": "receipt", "options": _nested(1_500, '{"a":', "}").replace("}}", "1}}", 1)},
        content=b'{"id": "1", "text": "x"}\n',
        headers={"content-type": "application/x-ndjson"},
    )
    assert answer.status_code == 400, answer.text


async def test_a_model_answer_nested_3000_levels_fails_the_extraction_not_the_service(redis: Redis) -> None:
    model = FakeModel().reply(_nested(3000, '{"a":', "}").replace("}}", "1}}", 1))
    async with app_client(_settings(), model.handler) as client:
        answer = await client.post("/v1/extract", json={"schema": "receipt", "text": "x", "options": {"cache": False}})
    assert answer.status_code == 422
    assert "nests deeper" in answer.text


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_schema_name_with_a_colon_is_a_400_on_every_route(client: AsyncTestClient[Any], method: str) -> None:
    assert (await client.put("/v1/schemas/a", json={"json_schema": {"type": "object"}})).status_code == 201
    for path in ("/v1/schemas/a:v1", "/v1/schemas/a:v1/versions/1"):
        if method == "DELETE" and path.endswith("/1"):
            continue
        answer = await client.request(method, path)
        assert answer.status_code == 400, answer.text
        assert "WRONGTYPE" not in answer.text


async def test_a_text_plain_body_is_415(client: AsyncTestClient[Any]) -> None:
    body = json.dumps({"schema": "receipt", "text": "x"})
    answer = await client.post("/v1/extract", content=body, headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    assert answer.json()["type"] == "unsupported-media-type"


async def test_too_many_or_too_large_headers_are_431(client: AsyncTestClient[Any]) -> None:
    many = {f"x-h{i}": "v" for i in range(150)}
    assert (await client.get("/v1/schemas", headers=many)).status_code == 431
    large = {"x-big": "v" * 20_000}
    answer = await client.get("/v1/schemas", headers=large)
    assert answer.status_code == 431
    assert answer.json()["type"] == "headers-too-large"


async def test_a_ref_cycle_is_refused_at_registration_with_a_pointer(client: AsyncTestClient[Any]) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"$ref": "#/$defs/x"}}}
    answer = await client.put("/v1/schemas/cyclic", json={"json_schema": schema})
    assert answer.status_code == 422
    assert answer.json()["pointer"].startswith("/$defs/x")


@contextlib.asynccontextmanager
async def _served(settings: Settings, handler: Handler) -> AsyncIterator[httpx2.AsyncClient]:
    """The app under uvicorn on a real socket: the test client answers one request at a time, these tests need
    several in flight."""
    with (
        serve_model(handler) as model_url,
        serve_app(create_app(settings.model_copy(update={"model_base_url": model_url}))) as url,
    ):
        async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
            yield client


async def test_a_hung_model_ends_at_the_deadline_and_the_breaker_then_answers_at_once(redis: Redis) -> None:
    model = FakeModel().time_out()
    limits = LimitSettings(request_deadline_s=1.0, breaker_failures=3, breaker_cooldown_s=30)
    settings = _settings(limits=limits, model_timeout_s=30.0, model_max_retries=2)
    body = {"schema": "receipt", "text": "x", "options": {"cache": False}}

    async def timed(client: httpx2.AsyncClient) -> tuple[int, str, float]:
        started = time.perf_counter()
        answer = await client.post("/v1/extract", json=body)
        return answer.status_code, answer.json()["type"], time.perf_counter() - started

    async with _served(settings, model.handler) as client:
        answers = await asyncio.gather(*(timed(client) for _ in range(3)))
        assert [(status, kind) for status, kind, _ in answers] == [(504, "deadline-exceeded")] * 3
        assert max(waited for _, _, waited in answers) < 2
        assert model.chat_calls == 3  # one call each: no retry could finish within the deadline
        refused = await client.post("/v1/extract", json=body)
        assert refused.status_code == 503
        assert refused.json()["type"] == "circuit-open"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.elapsed.total_seconds() < 0.5
        assert model.chat_calls == 3


async def test_a_tenant_over_its_rate_gets_429_with_ratelimit_headers(redis: Redis) -> None:
    limits = LimitSettings(tenants={"acme": TenantLimits(rate_per_s=0.5, burst=2)})
    settings = _settings(limits=limits, api_keys="acme:key-a,globex:key-g")
    async with app_client(settings, FakeModel().handler) as client:
        acme = {"authorization": "Bearer key-a"}
        first = [await client.get("/v1/schemas", headers=acme) for _ in range(2)]
        assert [a.status_code for a in first] == [200, 200]
        assert first[0].headers["ratelimit-policy"] == '"tenant";q=2;w=4'
        refused = await client.get("/v1/schemas", headers=acme)
        assert refused.status_code == 429
        assert refused.json()["type"] == "rate-limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit"].startswith('"tenant";r=0;t=')
        other = await client.get("/v1/schemas", headers={"x-api-key": "key-g"})
        assert other.status_code == 200  # another tenant is not limited by acme's traffic


async def test_a_tenant_over_its_requests_in_flight_gets_429(redis: Redis) -> None:
    release = threading.Event()
    answers = FakeModel().reply({})

    def slow(request: httpx2.Request) -> httpx2.Response:
        if not request.url.path.endswith("/models"):
            release.wait(5)
        return answers.handler(request)

    limits = LimitSettings(default=TenantLimits(max_in_flight=1))
    body = {"schema": "receipt", "text": "x", "options": {"cache": False}}
    async with _served(_settings(limits=limits), slow) as client:
        first = asyncio.ensure_future(client.post("/v1/extract", json=body))
        await asyncio.sleep(0.5)
        second = await client.post("/v1/extract", json=body)
        release.set()
        assert second.status_code == 429
        assert second.json()["limit"] == "in_flight"
        assert (await first).status_code == 200
        assert (await client.post("/v1/extract", json=body)).status_code == 200  # the lease was given back


async def test_a_batch_whose_data_redis_lost_is_410_and_one_never_made_is_404(
    client: AsyncTestClient[Any], redis: Redis
) -> None:
    submitted = await client.post("/v1/batches", json={"schema": "receipt", "documents": [{"id": "1", "text": "x"}]})
    assert submitted.status_code == 202
    batch_id = submitted.json()["batch_id"]
    await redis.flushdb()  # what a restart without persistence leaves
    lost = await client.get(f"/v1/batches/{batch_id}")
    assert lost.status_code == 410
    assert lost.json()["type"] == "batch-lost"
    never = await client.get(f"/v1/batches/{new_batch_id()}")
    assert never.status_code == 404
    assert never.json()["type"] == "batch-not-found"
