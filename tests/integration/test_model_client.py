"""The model client over real HTTP: retries, timeouts, unreachable endpoints and malformed answers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from extractor import errors
from extractor.extraction.model import ModelClient
from extractor.local.process import free_port
from tests.support.fake_model import serve_model

MESSAGES = [{"role": "user", "content": "hi"}]
COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"a": 1}'}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}


def scripted(*answers: httpx2.Response | type[Exception]) -> tuple[Callable[[httpx2.Request], Any], list[Any]]:
    """A handler answering each chat request with the next answer (the last repeats); records the requests."""
    seen: list[Any] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return httpx2.Response(200, json={"object": "list", "data": [{"id": "listed-model"}]})
        seen.append({"body": json.loads(request.content), "headers": dict(request.headers)})
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, type):
            raise answer("scripted")
        return answer

    return handler, seen


async def complete(client: ModelClient) -> Any:
    try:
        return await client.complete(MESSAGES, {"type": "json_object"}, max_tokens=50, temperature=0, seed=3)
    finally:
        await client.close()


async def test_sends_an_openai_request_and_reads_the_reply() -> None:
    handler, seen = scripted(httpx2.Response(200, json=COMPLETION))
    with serve_model(handler) as url:
        reply = await complete(ModelClient(url, "sk-test"))
    assert (reply.content, reply.finish_reason, reply.prompt_tokens, reply.completion_tokens) == (
        '{"a": 1}',
        "stop",
        7,
        3,
    )
    body, headers = seen[0]["body"], seen[0]["headers"]
    assert body == {
        "model": "listed-model",
        "messages": MESSAGES,
        "max_tokens": 50,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "seed": 3,
    }
    assert headers["authorization"] == "Bearer sk-test"


async def test_retries_5xx_then_succeeds_within_max_retries() -> None:
    busy = httpx2.Response(503, json={"error": {"message": "busy"}}, headers={"retry-after-ms": "10"})
    handler, seen = scripted(busy, busy, httpx2.Response(200, json=COMPLETION))
    with serve_model(handler) as url:
        reply = await complete(ModelClient(url, model="m", max_retries=2))
    assert reply.content == '{"a": 1}'
    assert len(seen) == 3


async def test_gives_up_after_max_retries_with_the_last_error() -> None:
    handler, seen = scripted(
        httpx2.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0.01"})
    )
    with serve_model(handler) as url, pytest.raises(errors.UpstreamRateLimitedError) as caught:
        await complete(ModelClient(url, model="m", max_retries=1))
    assert len(seen) == 2
    assert "429" in caught.value.detail
    assert "slow down" not in caught.value.detail  # the endpoint's own text is logged, not passed on


async def test_a_client_error_is_not_retried() -> None:
    handler, seen = scripted(httpx2.Response(400, json={"error": {"message": "bad schema"}}))
    with serve_model(handler) as url, pytest.raises(errors.UpstreamError) as caught:
        await complete(ModelClient(url, model="m", max_retries=3))
    assert len(seen) == 1
    assert caught.value.extra["upstream_status"] == 400


async def test_a_hung_endpoint_times_out_after_its_retries() -> None:
    handler, seen = scripted(httpx2.ReadTimeout)
    with serve_model(handler) as url:
        started = time.monotonic()
        with pytest.raises(errors.UpstreamTimeoutError):
            await complete(ModelClient(url, model="m", timeout_s=0.3, max_retries=1))
    assert len(seen) == 2
    assert time.monotonic() - started < 5


async def test_an_unreachable_endpoint_is_model_unavailable() -> None:
    client = ModelClient(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=0)
    with pytest.raises(errors.ModelUnavailableError):
        await complete(client)


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(200, content=b"<html>gateway</html>", headers={"content-type": "text/html"}),
        httpx2.Response(200, json={"id": 1}),
        httpx2.Response(200, json={"choices": [{"message": {"content": {"not": "a string"}}}]}),
    ],
)
async def test_a_malformed_200_is_an_upstream_error(answer: httpx2.Response) -> None:
    handler, _ = scripted(answer)
    with serve_model(handler) as url, pytest.raises(errors.UpstreamError) as caught:
        await complete(ModelClient(url, model="m"))
    assert type(caught.value) is errors.UpstreamError


async def test_ping_does_not_retry_and_name_is_asked_once() -> None:
    calls: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(request.url.path)
        return httpx2.Response(200, json={"data": [{"id": "first"}, {"id": "second"}]})

    with serve_model(handler) as url:
        client = ModelClient(url)
        try:
            names = await asyncio.gather(*(client.name() for _ in range(5)))
            await client.ping()
        finally:
            await client.close()
    assert names == ["first"] * 5
    assert calls == ["/v1/models", "/v1/models"]
