"""Server-sent events both ways: reading an OpenAI-style stream (``extraction/stream.py``) and writing a streamed
extraction's events (``api/extract_stream.py``: ids, heartbeat comments, the last event, cancellation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from extractor.answers import AttemptEvent, PartialEvent
from extractor.api.extract_stream import extraction_events
from extractor.errors import ExtractionFailedError, Problem, UpstreamError
from extractor.extraction.events import EventSink
from extractor.extraction.stream import StreamedCompletion, sse_data
from extractor.vocabulary import FieldState


async def lines(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def data_of(*items: bytes) -> list[str]:
    return [payload async for payload in sse_data(lines(*items))]


async def test_data_lines_comments_and_done() -> None:
    assert await data_of(
        b": keep-alive\n",
        b"\n",
        b'data: {"a": 1}\n',
        b"\n",
        b"event: chunk\r\n",
        b'data:{"b":\r\n',
        b"data: 2}\r\n",
        b"\r\n",
        b"data: [DONE]\n",
        b"\n",
        b'data: {"after": "done"}\n',
        b"\n",
    ) == ['{"a": 1}', '{"b":\n2}']


async def test_a_last_event_without_its_blank_line_counts() -> None:
    assert await data_of(b'data: {"a": 1}\n') == ['{"a": 1}']
    assert await data_of(b"data: [DONE]") == []


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_chunks_add_up() -> None:
    completion = StreamedCompletion()
    assert completion.add({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}) == ""
    assert not completion.started
    assert completion.add(chunk('{"a"')) == '{"a"'
    assert completion.started
    completion.add(chunk(": 1}"))
    completion.add(chunk(finish="stop"))
    assert (completion.content, completion.finish_reason, completion.output_tokens) == ('{"a": 1}', "stop", 2)
    completion.add({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
    assert (completion.prompt_tokens, completion.output_tokens) == (12, 3)
    assert (completion.response_model, completion.response_id) == ("m", "c1")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"error": {"message": "overloaded"}}, "overloaded"),
        ({"error": "quota"}, "quota"),
        ([1, 2], "no known shape"),
        ({"choices": [{"delta": {"content": 5}}]}, "not a string"),
        ({"choices": "x"}, "no known shape"),
    ],
)
def test_an_error_or_an_unknown_chunk_is_an_upstream_error(bad: Any, message: str) -> None:
    with pytest.raises(UpstreamError, match=message):
        StreamedCompletion().add(bad)


PARTIAL = PartialEvent(attempt=1, data={"a": "x"}, fields={"/a": FieldState.INCOMPLETE})


def problem(exc: Exception) -> Problem:
    assert isinstance(exc, ExtractionFailedError)
    return exc.problem()


async def collect(extraction: Any, heartbeat_s: float = 10.0) -> list[bytes]:
    return [message.encode() async for message in extraction_events(extraction, problem, heartbeat_s=heartbeat_s)]


async def test_events_have_ids_and_final_ends_the_stream() -> None:
    async def extraction(events: EventSink) -> str:
        events(PARTIAL)
        events(AttemptEvent(attempt=2, reason="invalid", errors=["/a: wrong"]))
        return '{"status": "ok"}'

    sent = await collect(extraction)
    assert sent == [
        b'id: 1\r\nevent: partial\r\ndata: {"attempt":1,"data":{"a":"x"},"fields":{"/a":"incomplete"},'
        b'"part":null,"parts":null}\r\n\r\n',
        b'id: 2\r\nevent: attempt\r\ndata: {"attempt":2,"reason":"invalid","errors":["/a: wrong"]}\r\n\r\n',
        b'id: 3\r\nevent: final\r\ndata: {"status": "ok"}\r\n\r\n',
    ]


async def test_a_failure_is_the_error_event_and_ends_the_stream() -> None:
    async def extraction(events: EventSink) -> str:
        events(PARTIAL)
        raise ExtractionFailedError("no valid output", attempts=3)

    sent = await collect(extraction)
    assert sent[-1].startswith(b"id: 2\r\nevent: error\r\ndata: {")
    assert b'"status":422' in sent[-1]
    assert b'"attempts":3' in sent[-1]


async def test_a_failure_to_describe_the_failure_still_ends_the_stream() -> None:
    async def extraction(events: EventSink) -> str:
        raise RuntimeError("not a domain error")  # ``problem`` above refuses it

    sent = await collect(extraction)
    assert len(sent) == 1
    assert b"event: error" in sent[0]
    assert b'"type":"internal-error"' in sent[0]


async def test_an_idle_stream_sends_comments() -> None:
    async def extraction(events: EventSink) -> str:
        await asyncio.sleep(0.25)
        return "{}"

    sent = await collect(extraction, heartbeat_s=0.05)
    assert b": ping\r\n\r\n" in sent
    assert sent[-1] == b"id: 1\r\nevent: final\r\ndata: {}\r\n\r\n", "a comment takes no id"


async def test_closing_the_stream_cancels_the_extraction() -> None:
    cancelled = asyncio.Event()

    async def extraction(events: EventSink) -> str:
        events(PARTIAL)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "{}"

    stream = extraction_events(extraction, problem, heartbeat_s=10)
    first = await anext(stream)
    assert first.event == "partial"
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator; what Litestar does on a hang-up
    await asyncio.wait_for(cancelled.wait(), 2)
