"""The benchmark fake, driven through the real openai client over an in-process ASGI transport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2
import jsonschema
import openai
import pytest

from bench.fake_openai import ASGIApp, build_answer, create_fake_app
from tests.support.processes import fake_openai

TEXT = "The seller ACME Corp delivers 42 crates on 2024-03-05 for a total of 1250.50."

RECEIPT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "count": {"type": "integer", "maximum": 10},
        "date": {"type": "string", "format": "date"},
        "currency": {"type": "string", "enum": ["USD", "EUR"]},
        "note": {"type": ["string", "null"], "examples": ["thanks"]},
        "paid": {"type": "boolean"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 1},
        "buyer": {"anyOf": [{"$ref": "#/$defs/party"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["vendor", "total", "count", "date", "currency", "note", "paid", "lines", "buyer", "tags"],
    "additionalProperties": False,
    "$defs": {
        "line": {
            "type": "object",
            "properties": {"sku": {"type": "string", "minLength": 12}, "qty": {"type": "integer"}},
            "required": ["sku", "qty"],
            "additionalProperties": False,
        },
        "party": {"type": "object", "properties": {"name": {"type": ["string", "null"]}}, "required": ["name"]},
    },
}


NESTED = {"type": "object", "properties": {"b": {"type": "boolean"}}}


def _client(app: ASGIApp) -> openai.AsyncOpenAI:
    # openai>=3 is built on httpx2: give it an httpx2 client
    http_client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    return openai.AsyncOpenAI(base_url="http://fake/v1", api_key="x", http_client=http_client, max_retries=0)


@pytest.fixture
async def client() -> AsyncIterator[openai.AsyncOpenAI]:
    async with _client(create_fake_app()) as fake:
        yield fake


def _messages(text: str = TEXT) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Extract the fields; null when absent."}, {"role": "user", "content": text}]


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}


async def _ask(client: openai.AsyncOpenAI, response_format: Any = None, text: str = TEXT) -> Any:
    extra = {} if response_format is None else {"response_format": response_format}
    return await client.chat.completions.create(model="fake-model", messages=_messages(text), **extra)  # type: ignore[arg-type]


async def test_models_lists_the_fake_model(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [("fake-model", "bench")]


async def test_json_schema_answer_validates_and_copies_from_the_text(client: openai.AsyncOpenAI) -> None:
    completion = await _ask(client, _json_schema(RECEIPT))
    answer = json.loads(completion.choices[0].message.content)
    jsonschema.Draft202012Validator(RECEIPT).validate(answer)
    assert answer["vendor"] == "seller"  # first word that is not a stop word
    assert answer["total"] == 42  # first number in the text
    assert answer["count"] == 10  # 42 clamped to the maximum
    assert answer["date"] == "2024-03-05"
    assert answer["currency"] == "USD"
    assert answer["note"] == "thanks"  # examples win
    assert answer["paid"] is False
    assert answer["lines"] == [{"sku": "sellerxxxxxx", "qty": 42}]
    assert answer["buyer"] == {"name": "seller"}
    assert answer["tags"] == []


async def test_json_object_with_schema_is_honoured(client: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"amount": {"type": ["number", "null"]}, "who": {"type": "string"}}}
    completion = await _ask(client, {"type": "json_object", "schema": schema}, text="nothing numeric here")
    answer = json.loads(completion.choices[0].message.content)
    jsonschema.Draft202012Validator(schema).validate(answer)
    assert answer == {"amount": None, "who": "nothing"}


async def test_without_a_schema_the_answer_is_an_empty_object(client: openai.AsyncOpenAI) -> None:
    plain = await _ask(client)
    json_object = await _ask(client, {"type": "json_object"})
    assert plain.choices[0].message.content == "{}"
    assert json_object.choices[0].message.content == "{}"


async def test_completion_shape_and_usage(client: openai.AsyncOpenAI) -> None:
    completion = await _ask(client, _json_schema(RECEIPT))
    content = completion.choices[0].message.content
    assert content is not None
    all_text = "\n".join(m["content"] for m in _messages())
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fake-model"
    assert completion.id.startswith("chatcmpl-")
    assert abs(completion.created - time.time()) < 60
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == len(all_text) // 4
    assert completion.usage.completion_tokens == len(content) // 4
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_answers_are_deterministic(client: openai.AsyncOpenAI) -> None:
    first = await _ask(client, _json_schema(RECEIPT))
    second = await _ask(client, _json_schema(RECEIPT))
    assert first.choices[0].message.content == second.choices[0].message.content


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        ({"type": "string"}, "", ""),
        ({"type": ["string", "null"]}, "42", None),
        ({"type": "integer", "minimum": 5}, "no digits", 5),
        ({"type": "number"}, "costs -3.5 now", -3.5),
        ({"type": "integer"}, "costs 3.9", 3),
        ({"type": "string", "maxLength": 3}, "Kilimanjaro", "Kil"),
        ({"type": "string", "pattern": "^[0-9]+$"}, "word 123 456", "123"),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, "7 days", [7, 7]),
        ({"const": "fixed"}, "anything", "fixed"),
        (
            {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "boolean"}}}}},
            "",
            {"a": {"b": False}},
        ),
        (True, "x", None),
    ],
)
def test_build_answer_rules(schema: Any, text: str, expected: Any) -> None:
    assert build_answer({"type": "object", "properties": {"v": schema}}, text) == {"v": expected}


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_faults_raise_the_matching_openai_error(status: int, error_class: type[openai.APIStatusError]) -> None:
    async with _client(create_fake_app(fail_rate=1.0, fail_status=status)) as fake:
        with pytest.raises(error_class) as caught:
            await _ask(fake, _json_schema(RECEIPT))
    assert caught.value.status_code == status
    assert "injected fault" in caught.value.message
    assert caught.value.type is not None
    assert caught.value.response.headers.get("retry-after") == ("1" if status == 429 else None)


async def test_rate_limit_error_carries_the_openai_code() -> None:
    async with _client(create_fake_app(fail_rate=1.0, fail_status=429)) as fake:
        with pytest.raises(openai.RateLimitError) as caught:
            await _ask(fake)
    assert (caught.value.type, caught.value.code) == ("rate_limit_error", "rate_limit_exceeded")


async def test_hang_is_ended_by_the_client_timeout() -> None:
    async with _client(create_fake_app(hang_rate=1.0)) as fake:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_ask(fake), 0.2)
    assert time.perf_counter() - started < 5


async def test_faults_follow_the_seed() -> None:
    async def outcomes(seed: int) -> list[bool]:
        results = []
        async with _client(create_fake_app(fail_rate=0.5, seed=seed)) as fake:
            for _ in range(20):
                try:
                    await _ask(fake)
                except openai.InternalServerError:
                    results.append(False)
                else:
                    results.append(True)
        return results

    first, again, other = await outcomes(7), await outcomes(7), await outcomes(8)
    assert first == again
    assert first != other
    assert 0 < sum(first) < 20


async def test_latency_is_applied() -> None:
    async with _client(create_fake_app(latency_ms=80)) as fake:
        started = time.perf_counter()
        await _ask(fake)
    assert time.perf_counter() - started >= 0.08


async def test_bad_requests_get_openai_errors() -> None:
    transport = httpx.ASGITransport(app=create_fake_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
        not_json = await http.post("/v1/chat/completions", content=b"{nope")
        no_messages = await http.post("/v1/chat/completions", json={"model": "m"})
        unknown = await http.get("/v1/nothing")
        wrong_method = await http.get("/v1/chat/completions")
    assert [r.status_code for r in (not_json, no_messages, unknown, wrong_method)] == [400, 400, 404, 405]
    assert not_json.json()["error"]["type"] == "invalid_request_error"


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        create_fake_app(fail_rate=0.7, hang_rate=0.4)


@pytest.fixture
def served() -> Iterator[str]:
    """Run ``python -m bench.fake_openai`` on a free loopback port; yield its base URL."""
    with fake_openai(0, "--hang-rate", "0.5") as base_url:
        yield base_url


async def test_cli_server_answers_and_hangs_until_the_client_times_out(served: str) -> None:
    # Seed 0 draws 0.84, 0.76, 0.42, ...: with hang_rate 0.5 the first two requests answer, the third hangs.
    async with openai.AsyncOpenAI(base_url=served, api_key="x", max_retries=0, timeout=0.5) as client:
        answers = [await _ask(client, _json_schema(RECEIPT)) for _ in range(2)]
        with pytest.raises(openai.APITimeoutError):
            await _ask(client, _json_schema(RECEIPT))
    for completion in answers:
        jsonschema.Draft202012Validator(RECEIPT).validate(json.loads(completion.choices[0].message.content))
