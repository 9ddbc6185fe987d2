"""POST /v1/extract as server-sent events: real Redis (db 3), the model faked at the HTTP transport, streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor.app import create_app
from extractor.settings import Settings
from tests.support.app import app_client, make_settings, serve_app
from tests.support.fake_model import FakeModel, serve_model
from tests.support.redis_db import STREAMING_URL, flushed_db

RECEIPT_TEXT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n"
GOOD = {
    "merchant": "ACME Market",
    "date": "2024-03-05",
    "total": 3.7,
    "currency": "EUR",
    "items": [{"name": "Bread", "price": 2.5}, {"name": "Milk", "price": 1.2}],
}
SSE = {"accept": "text/event-stream"}


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    async with flushed_db(STREAMING_URL) as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    return make_settings(redis_url=STREAMING_URL)


@pytest.fixture
async def client(redis: Redis, fake_model: FakeModel, settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with app_client(settings, fake_model.handler) as test_client:
        yield test_client


def parse_events(body: str) -> list[dict[str, Any]]:
    """The events of a text/event-stream body: ``{"id", "event", "data"}`` each, ``{"comment"}`` for a comment."""
    events: list[dict[str, Any]] = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, Any] = {}
        for line in filter(None, block.split("\n")):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if not name:
                event["comment"] = value
            else:
                event[name] = event[name] + "\n" + value if name == "data" and name in event else value
        if "data" in event:
            event["data"] = json.loads(event["data"])
        if event:
            events.append(event)
    return events


def body(**options: Any) -> dict[str, Any]:
    return {"schema": "receipt", "text": RECEIPT_TEXT, "options": options}


async def stream(client: AsyncTestClient[Any], **options: Any) -> list[dict[str, Any]]:
    response = await client.post("/v1/extract", json=body(**options), headers=SSE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.text)


def without_timings(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "timings_ms"}


async def test_partials_then_final_the_json_answer(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    events = await stream(client, cache=False)
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "final"
    assert set(kinds[:-1]) == {"partial"}
    assert len(kinds) > 5, "the answer streams in pieces"
    partials = [e["data"] for e in events[:-1]]
    assert partials[0]["fields"]["/total"] == "pending"
    assert all(p["attempt"] == 1 and p["part"] is None for p in partials)
    assert partials[-1]["data"] == GOOD
    assert set(partials[-1]["fields"].values()) == {"complete"}
    seen = [p["data"]["total"] for p in partials if "total" in p["data"]]
    assert set(seen) == {3.7}, "a number appears once written in full"
    merchants = [p["data"]["merchant"] for p in partials if "merchant" in p["data"]]
    assert any(len(m) < len("ACME Market") for m in merchants), "a string shows as it is written"
    request = fake_model.requests[0]
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["response_format"]["type"] == "json_schema"

    plain = await client.post("/v1/extract", json=body(cache=False))
    assert without_timings(events[-1]["data"]) == without_timings(plain.json())
    assert events[-1]["data"]["usage"] == {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}


async def test_a_cache_hit_sends_only_final(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    first = await stream(client)
    assert first[-1]["data"]["cached"] is False
    events = await stream(client)
    assert [e["event"] for e in events] == ["final"]
    assert events[0]["id"] == "1"
    assert events[0]["data"]["cached"] is True
    assert events[0]["data"]["data"] == GOOD
    assert fake_model.chat_calls == 1


async def test_a_reask_sends_attempt_and_starts_over(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply({"merchant": ["not", "a", "string"]}).reply(GOOD)
    events = await stream(client, cache=False)
    kinds = [e["event"] for e in events]
    assert kinds.count("attempt") == 1
    at = kinds.index("attempt")
    attempt = events[at]["data"]
    assert attempt["attempt"] == 2
    assert attempt["reason"] == "invalid"
    assert any(error.startswith("/merchant") for error in attempt["errors"])
    before, after = events[:at], events[at + 1 : -1]
    assert before
    assert all(e["event"] == "partial" and e["data"]["attempt"] == 1 for e in before)
    assert after
    assert all(e["event"] == "partial" and e["data"]["attempt"] == 2 for e in after)
    assert "merchant" not in after[0]["data"] or after[0]["data"]["merchant"] != ["not", "a", "string"]
    assert after[-1]["data"]["data"] == GOOD
    assert events[-1]["event"] == "final"
    assert events[-1]["data"]["attempts"] == 2


async def test_an_error_event_is_the_problem_document(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply("I cannot help with that.")
    events = await stream(client, cache=False)
    assert [e["event"] for e in events] == ["attempt", "attempt", "error"]
    problem = events[-1]["data"]
    assert problem["status"] == 422
    assert problem["type"] == "extraction-failed"
    plain = await client.post("/v1/extract", json=body(cache=False))
    assert plain.status_code == 422
    assert problem == plain.json()


@pytest.mark.parametrize(
    ("status", "expected"), [(503, (502, "upstream-unavailable")), (429, (503, "upstream-rate-limited"))]
)
async def test_an_upstream_failure_is_an_error_event_with_its_status(
    client: AsyncTestClient[Any], fake_model: FakeModel, status: int, expected: tuple[int, str]
) -> None:
    fake_model.fail(status)
    events = await stream(client)
    assert [e["event"] for e in events] == ["error"]
    assert (events[0]["data"]["status"], events[0]["data"]["type"]) == expected
    assert "detail" in events[0]["data"]


async def test_an_unknown_schema_is_an_error_event(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/v1/extract", json={"schema": "nope", "text": "x"}, headers=SSE)
    events = parse_events(response.text)
    assert [e["event"] for e in events] == ["error"]
    assert events[0]["data"]["status"] == 404
    assert events[0]["data"]["type"] == "schema-not-found"


async def test_json_stays_the_default(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    for accept in ("*/*", "application/json", "application/json, text/event-stream;q=0.5"):
        response = await client.post("/v1/extract", json=body(cache=False), headers={"accept": accept})
        assert response.headers["content-type"].startswith("application/json"), accept
        assert response.json()["data"] == GOOD
    assert all("stream" not in request for request in fake_model.requests)


async def test_a_silent_stream_gets_heartbeats(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.stream(GOOD, piece_chars=40, delay_s=0.3)
    settings = make_settings(redis_url=STREAMING_URL, stream_heartbeat_s=0.1)
    async with app_client(settings, fake_model.handler) as client:
        events = await stream(client, cache=False)
    assert any(e.get("comment") == "ping" for e in events)
    assert events[-1]["event"] == "final"
    assert events[-1]["data"]["data"] == GOOD


async def test_a_model_gone_silent_mid_answer_ends_in_504_without_a_retry(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.stream(GOOD, stall_after=3)
    settings = make_settings(redis_url=STREAMING_URL, model_idle_timeout_s=0.3, model_max_retries=2)
    async with app_client(settings, fake_model.handler) as client:
        events = await stream(client)
    assert events[0]["event"] == "partial"
    assert events[-1]["event"] == "error"
    assert (events[-1]["data"]["status"], events[-1]["data"]["type"]) == (504, "upstream-timeout")
    assert fake_model.chat_calls == 1, "no retry after the first token"
    assert not await redis.keys("*:cache:*")


async def test_hanging_up_cancels_the_model_call_and_caches_nothing(redis: Redis) -> None:
    fake_model = FakeModel().stream(GOOD, piece_chars=2, delay_s=0.05)  # about 4 s of answer
    with serve_model(fake_model.handler) as model_url:
        app = create_app(make_settings(redis_url=STREAMING_URL, model_base_url=model_url, model_timeout_s=30))
        with serve_app(app) as url:
            async with (
                httpx.AsyncClient(base_url=url, timeout=10) as http,
                http.stream("POST", "/v1/extract", json=body(), headers=SSE) as response,
            ):
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("event: partial"):
                        break  # hang up at the first partial object
            closed = await asyncio.to_thread(fake_model.hang_up.wait, 1.5)
            assert closed, "the model's stream was not closed when the client hung up"
            assert fake_model.hung_up == 1
            assert fake_model.chat_calls == 1
            await asyncio.sleep(0.3)
            assert not await redis.keys("*:cache:*"), "an unfinished answer was cached"


async def test_the_openapi_document_describes_the_event_stream(client: AsyncTestClient[Any]) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    answer = document["paths"]["/v1/extract"]["post"]["responses"]["200"]["content"]
    assert set(answer) == {"application/json", "text/event-stream"}
    assert answer["text/event-stream"]["schema"] == {"$ref": "#/components/schemas/ExtractionStreamEvent"}
    assert "2000" not in document["paths"]["/v1/extract"]["post"]["responses"]
    schemas = document["components"]["schemas"]
    assert {"PartialEvent", "AttemptEvent", "ExtractionStreamEvent"} <= set(schemas)
    assert set(schemas["PartialEvent"]["properties"]) >= {"attempt", "data", "fields", "part", "parts"}


LEDGER = {
    "type": "object",
    "properties": {"company": {"type": "string"}, "total": {"type": "number", "x-merge": "sum"}},
}
_FILLER = " The parties note this clause for the record and nothing else of interest happens in it." * 2
PARTS = [f"Seller: {name}. Invoice amount {amount} paid.{_FILLER}" for name, amount in (("ACME", 100), ("BETA", 20))]


def ledger_answer(document: str) -> dict[str, Any]:
    return {"company": "ACME", "total": 100} if "ACME" in document else {"company": None, "total": 20}


async def test_a_long_document_sends_a_partial_per_part_merged(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.reply_by_document(ledger_answer)
    extraction = {"chunk_tokens": 100, "chunk_overlap_chars": 0, "max_attempts": 1}
    async with app_client(make_settings(redis_url=STREAMING_URL, extraction=extraction), fake_model.handler) as client:
        assert (await client.put("/v1/schemas/ledger", json={"json_schema": LEDGER})).status_code in (200, 201)
        request = {"schema": "ledger", "text": "\n\n".join(PARTS), "options": {"cache": False}}
        response = await client.post("/v1/extract", json=request, headers=SSE)
        plain = await client.post("/v1/extract", json=request)
    events = parse_events(response.text)
    assert [e["event"] for e in events] == ["partial", "partial", "final"]
    first, second = (e["data"] for e in events[:2])
    assert [(first["part"], first["parts"]), (second["part"], second["parts"])] == [(1, 2), (2, 2)]
    assert set(first["fields"].values()) <= {"incomplete", "pending"}
    assert second["data"] == {"company": "ACME", "total": 120}
    assert second["fields"] == {"/company": "complete", "/total": "complete"}
    assert all("stream" not in r for r in fake_model.requests), "the parts' own calls are not streamed"
    assert without_timings(events[-1]["data"]) == without_timings(plain.json())
