"""The model client's streamed call against the fake model on a loopback port: pieces handed on as they arrive,
the same retry policy before the first piece and none after it, the idle and total time-outs."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

import httpx2
import pytest

from extractor.errors import UpstreamError, UpstreamTimeoutError, UpstreamUnavailableError
from extractor.extraction.model import ModelClient, ModelReply
from tests.support.fake_model import FakeModel, serve_model, sse_chunks, streamed

ANSWER = {"merchant": "ACME Market", "total": 3.7}
TEXT = json.dumps(ANSWER)
MESSAGES = [{"role": "user", "content": "extract"}]


async def call(url: str, pieces: list[str], **client: float) -> ModelReply:
    model = ModelClient(url, model="fake-model", **client)  # type: ignore[arg-type]  # keyword timeouts and retries
    try:
        return await model.complete(MESSAGES, None, max_tokens=100, temperature=0, seed=None, on_text=pieces.append)
    finally:
        await model.close()


async def test_pieces_arrive_in_order_and_add_up_to_the_reply() -> None:
    fake = FakeModel().stream(ANSWER, piece_chars=3, tokens=7)
    pieces: list[str] = []
    with serve_model(fake.handler) as url:
        reply = await call(url, pieces)
    assert len(pieces) == len(range(0, len(TEXT), 3))
    assert "".join(pieces) == reply.content == TEXT
    assert (reply.finish_reason, reply.prompt_tokens, reply.completion_tokens) == ("stop", 100, 7)
    assert (reply.response_model, reply.response_id) == ("fake-model", "chatcmpl-1")
    assert fake.requests[0]["stream"] is True
    assert fake.requests[0]["stream_options"] == {"include_usage": True}


async def test_without_usage_the_pieces_are_counted() -> None:
    fake = FakeModel().stream(ANSWER, piece_chars=5, usage=False)
    with serve_model(fake.handler) as url:
        reply = await call(url, [])
    assert reply.prompt_tokens == 0
    assert reply.completion_tokens == len(range(0, len(TEXT), 5))


async def test_an_endpoint_that_ignores_stream_answers_one_piece() -> None:
    fake = FakeModel()
    fake.steps.append(("raw", "application/json", json.dumps(_completion(TEXT)).encode()))
    pieces: list[str] = []
    with serve_model(fake.handler) as url:
        reply = await call(url, pieces)
    assert pieces == [TEXT]
    assert reply.content == TEXT
    assert reply.completion_tokens == 5


async def test_a_failure_before_the_first_piece_is_retried() -> None:
    fake = FakeModel().fail(503).stream(ANSWER)
    with serve_model(fake.handler) as url:
        reply = await call(url, [], max_retries=2)
    assert reply.content == TEXT
    assert fake.chat_calls == 2


async def test_silence_before_the_first_piece_is_retried_like_any_timeout() -> None:
    fake = FakeModel().stream(ANSWER, stall_after=0).stream(ANSWER)
    started = time.monotonic()
    with serve_model(fake.handler) as url:
        reply = await call(url, [], max_retries=1, idle_timeout_s=0.3)
    assert reply.content == TEXT
    assert fake.chat_calls == 2
    assert time.monotonic() - started < 5


async def test_silence_after_the_first_piece_ends_the_call_without_a_retry() -> None:
    fake = FakeModel().stream(ANSWER, stall_after=2)
    pieces: list[str] = []
    with serve_model(fake.handler) as url, pytest.raises(UpstreamTimeoutError, match="middle of its answer"):
        await call(url, pieces, max_retries=2, idle_timeout_s=0.3)
    assert len(pieces) == 2
    assert fake.chat_calls == 1


async def test_the_total_timeout_bounds_a_slow_stream() -> None:
    fake = FakeModel().stream(ANSWER, piece_chars=1, delay_s=0.05)  # about 2 s of answer
    with serve_model(fake.handler) as url, pytest.raises(UpstreamTimeoutError):
        await call(url, [], max_retries=0, timeout_s=0.5, idle_timeout_s=5)


async def test_a_status_error_is_the_same_domain_error_as_without_streaming() -> None:
    fake = FakeModel().fail(503)
    with serve_model(fake.handler) as url, pytest.raises(UpstreamUnavailableError, match="503"):
        await call(url, [], max_retries=0)


async def test_a_stream_cut_short_or_an_error_chunk_is_an_upstream_error() -> None:
    async def cut() -> AsyncIterator[bytes]:
        async for chunk in sse_chunks(TEXT, usage=None):
            if b'"finish_reason": "stop"' in chunk:
                return
            yield chunk

    async def error_chunk() -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"index": 0, "delta": {"content": "{"}}]}\n\n'
        yield b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'

    bodies: list[tuple[Callable[[], AsyncIterator[bytes]], str]] = [
        (cut, "before the answer was finished"),
        (error_chunk, "overloaded"),
    ]
    for body, expected in bodies:

        def handler(_request: object, body: Callable[[], AsyncIterator[bytes]] = body) -> httpx2.Response:
            return streamed(body())

        with (
            serve_model(handler) as url,
            pytest.raises(UpstreamError, match=expected),
        ):
            await call(url, [], max_retries=0)


def _completion(content: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-1",
        "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5},
    }


async def test_streamed_log_probabilities_are_kept() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for token, logprob in (('{"a"', -0.25), (": 1}", -0.5)):
            choice = {
                "index": 0,
                "delta": {"content": token},
                "logprobs": {"content": [{"token": token, "logprob": logprob}]},
            }
            yield f"data: {json.dumps({'choices': [choice]})}\n\n".encode()
        yield b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
        yield b"data: [DONE]\n\n"

    with serve_model(lambda _request: streamed(chunks())) as url:
        reply = await call(url, [])
    assert reply.content == '{"a": 1}'
    assert reply.logprobs == (('{"a"', -0.25), (": 1}", -0.5))
