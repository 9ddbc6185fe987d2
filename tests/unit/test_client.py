"""``extractor.client`` against a scripted service (httpx ``MockTransport``), each behaviour through both the blocking
and the asyncio client: retries on 503 and broken connections, problem documents as typed exceptions, auth."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from extractor.client import (
    AsyncClient,
    Batch,
    Client,
    ExtractionFailedError,
    ExtractionResult,
    ExtractorAPIError,
    InvalidRequestError,
    NotFoundError,
    RetryPolicy,
    ServiceUnreachableError,
    UnauthorizedError,
    UnavailableError,
    UpstreamError,
)
from extractor.client.retry import parse_retry_after
from extractor.vocabulary import BatchStatus, ItemStatus

Handler = Callable[[httpx.Request], httpx.Response]
Use = Callable[[Any], Any]

URL = "http://extractor.test"
NO_WAIT = RetryPolicy(max_retries=2, backoff_s=0)
RESULT = {
    "status": "ok",
    "data": {"total": 3.7},
    "schema": "receipt@1",
    "model": "m",
    "enforcement": "json_schema",
    "attempts": 1,
    "fields": {"/total": {"span": [6, 10], "grounded": True, "match": "exact"}},
}
BATCH = {"batch_id": "b1", "status": "finished", "schema": "receipt@1", "total": 2, "done": 2, "created_at": 1.0}


def _sync(handler: Handler, use: Use, **options: Any) -> Any:
    with httpx.Client(base_url=URL, transport=httpx.MockTransport(handler)) as http:
        answer = use(Client(http_client=http, **options))
        return list(answer) if isinstance(answer, Iterator) else answer


async def _async(handler: Handler, use: Use, **options: Any) -> Any:
    async with httpx.AsyncClient(base_url=URL, transport=httpx.MockTransport(handler)) as http:
        answer = use(AsyncClient(http_client=http, **options))
        if isinstance(answer, AsyncIterator):
            return [item async for item in answer]
        return await answer


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``call(handler, use, **client_options)``: ``use(client)`` through a Client or an AsyncClient, its answer
    awaited and its iterators drained; the same test then holds for both."""
    monkeypatch.delenv("EXTRACTOR_API_KEY", raising=False)
    options = {"retry": NO_WAIT}
    if request.param == "sync":
        return lambda handler, use, **more: _sync(handler, use, **(options | more))
    return lambda handler, use, **more: asyncio.run(_async(handler, use, **(options | more)))


def problem(status: int, type_: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"type": type_, "title": type_.replace("-", " "), "status": status, "detail": f"it is {type_}", **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json", **(headers or {})})


class Script:
    """Answers in order (the last repeats) and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_extract_answers_the_servers_own_result_model(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(200, json=RESULT))
    result = call(script, lambda c: c.extract("receipt", "TOTAL 3.70", options={"grounding": "strict"}))
    assert isinstance(result, ExtractionResult)
    assert result.data == {"total": 3.7}
    assert result.fields["/total"].span == (6, 10)
    sent = json.loads(script.requests[0].content)
    assert sent == {"schema": "receipt", "text": "TOTAL 3.70", "options": {"grounding": "strict"}}


def test_a_misspelt_option_fails_before_anything_is_sent(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(200, json=RESULT))
    with pytest.raises(ValueError, match="grounding"):
        call(script, lambda c: c.extract("receipt", "x", options={"grounding": "loose"}))
    assert script.requests == []


def test_api_key_is_sent_as_a_bearer_token(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(200, json={"status": "ok"}))
    call(script, lambda c: c.health(), api_key="key-one")
    assert script.requests[0].headers["Authorization"] == "Bearer key-one"


def test_no_api_key_sends_no_authorization(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(200, json={"status": "ok"}))
    call(script, lambda c: c.health())
    assert "Authorization" not in script.requests[0].headers


def test_503_is_retried_until_it_succeeds(call: Callable[..., Any]) -> None:
    unavailable = problem(503, "store-unavailable", {"Retry-After": "0"})
    script = Script(unavailable, problem(503, "shutting-down"), httpx.Response(200, json=RESULT))
    assert call(script, lambda c: c.extract("receipt", "x")).status == "ok"
    assert len(script.requests) == 3


def test_retry_after_is_honoured(call: Callable[..., Any]) -> None:
    script = Script(problem(503, "model-unavailable", {"Retry-After": "0.3"}), httpx.Response(200, json=RESULT))
    started = time.monotonic()
    call(script, lambda c: c.extract("receipt", "x"))
    assert time.monotonic() - started >= 0.3
    assert len(script.requests) == 2


def test_503_gives_up_after_the_retries_with_retry_after(call: Callable[..., Any]) -> None:
    script = Script(problem(503, "upstream-rate-limited", {"Retry-After": "0"}))
    with pytest.raises(UnavailableError) as caught:
        call(script, lambda c: c.extract("receipt", "x"), retry=RetryPolicy(max_retries=3))
    assert len(script.requests) == 4
    assert caught.value.retry_after == 0
    assert caught.value.type == "upstream-rate-limited"


@pytest.mark.parametrize(
    ("status", "type_", "cls"),
    [
        (400, "invalid-input", InvalidRequestError),
        (401, "unauthorized", UnauthorizedError),
        (404, "schema-not-found", NotFoundError),
        (409, "conflict", InvalidRequestError),
        (413, "payload-too-large", InvalidRequestError),
        (422, "invalid-schema", InvalidRequestError),
        (422, "extraction-failed", ExtractionFailedError),
        (422, "output-truncated", ExtractionFailedError),
        (502, "upstream-error", UpstreamError),
        (504, "upstream-timeout", UpstreamError),
        (500, "internal-error", ExtractorAPIError),
    ],
)
def test_a_problem_is_raised_as_its_typed_error(
    call: Callable[..., Any], status: int, type_: str, cls: type[ExtractorAPIError]
) -> None:
    script = Script(problem(status, type_, attempts=3, output="{"))
    with pytest.raises(cls) as caught:
        call(script, lambda c: c.extract("receipt", "x"))
    assert type(caught.value) is cls
    assert (caught.value.status, caught.value.type, caught.value.detail) == (status, type_, f"it is {type_}")
    assert caught.value.problem.model_extra == {"attempts": 3, "output": "{"}
    assert len(script.requests) == 1  # only a 503 is retried


def test_an_answer_that_is_no_problem_document_still_raises_typed(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(UpstreamError) as caught:
        call(script, lambda c: c.list_schemas())
    assert caught.value.type == "about:blank"
    assert "Bad Gateway" in caught.value.detail


def test_a_refused_connection_is_retried(call: Callable[..., Any]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json={"status": "ok"}))
    assert call(script, lambda c: c.health()).status == "ok"
    assert len(script.requests) == 2


def test_unreachable_after_the_retries(call: Callable[..., Any]) -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(ServiceUnreachableError, match=r"cannot reach extractor at http://extractor\.test"):
        call(script, lambda c: c.health())
    assert len(script.requests) == 3


def test_a_timeout_is_not_sent_again(call: Callable[..., Any]) -> None:
    """A slow extraction sent again is twice the work on the model."""
    script = Script(httpx.ReadTimeout("slow"), httpx.Response(200, json=RESULT))
    with pytest.raises(ServiceUnreachableError):
        call(script, lambda c: c.extract("receipt", "x"))
    assert len(script.requests) == 1


def test_not_ready_is_an_answer(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(503, json={"status": "not ready", "checks": {"redis": "down", "model": "ok"}}))
    readiness = call(script, lambda c: c.ready())
    assert not readiness.ready
    assert readiness.checks["redis"] == "down"
    assert len(script.requests) == 1


def test_batch_submission_carries_one_idempotency_key_across_retries(call: Callable[..., Any]) -> None:
    script = Script(problem(503, "shutting-down", {"Retry-After": "0"}), httpx.Response(202, json=BATCH))
    batch = call(script, lambda c: c.create_batch("receipt", [("a", "one"), {"id": "b", "text": "two"}]))
    assert isinstance(batch, Batch)
    assert batch.status is BatchStatus.FINISHED
    keys = {request.headers["Idempotency-Key"] for request in script.requests}
    assert len(script.requests) == 2
    assert len(keys) == 1
    assert json.loads(script.requests[0].content)["documents"][1] == {"id": "b", "text": "two"}


def test_ndjson_submission(call: Callable[..., Any]) -> None:
    script = Script(httpx.Response(202, json=BATCH))
    lines = '{"id": "a", "text": "one"}\n'
    call(script, lambda c: c.create_batch_ndjson("receipt", lines, options={"cache": False}, idempotency_key="k"))
    sent = script.requests[0]
    assert sent.headers["Content-Type"] == "application/x-ndjson"
    assert sent.headers["Idempotency-Key"] == "k"
    assert sent.url.params["schema"] == "receipt"
    assert json.loads(sent.url.params["options"]) == {"cache": False}
    assert sent.content == lines.encode()


def test_batch_results_are_read_line_by_line(call: Callable[..., Any]) -> None:
    error = {"type": "extraction-failed", "title": "t", "status": 422, "detail": "d"}
    failed = {"id": "b", "index": 1, "status": "failed", "error": error}
    body = json.dumps({**RESULT, "id": "a", "index": 0}) + "\n" + json.dumps(failed) + "\n"
    script = Script(httpx.Response(200, text=body, headers={"content-type": "application/x-ndjson"}))
    results = call(script, lambda c: c.batch_results("b1", offset=0, wait=True))
    assert [(r.id, r.index, r.status) for r in results] == [("a", 0, ItemStatus.OK), ("b", 1, ItemStatus.FAILED)]
    assert results[0].result is not None
    assert results[0].result.data == {"total": 3.7}
    assert results[1].error is not None
    assert results[1].error.type == "extraction-failed"
    assert results[1].line == json.dumps(failed)
    assert script.requests[0].url.params["wait"] == "true"


def test_batch_events_are_read_from_server_sent_events(call: Callable[..., Any]) -> None:
    running = {**BATCH, "status": "running", "done": 1, "final": False}
    final = {**BATCH, "final": True}
    body = f"event: progress\r\ndata: {json.dumps(running)}\r\n\r\nevent: final\r\ndata: {json.dumps(final)}\r\n\r\n"
    script = Script(httpx.Response(200, text=body, headers={"content-type": "text/event-stream"}))
    events = call(script, lambda c: c.batch_events("b1"))
    assert [(e.done, e.final) for e in events] == [(1, False), (2, True)]


def test_a_missing_batch_raises_before_any_result(call: Callable[..., Any]) -> None:
    script = Script(problem(404, "batch-not-found"))
    with pytest.raises(NotFoundError):
        call(script, lambda c: c.batch_results("nope"))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), (None, None), ("soon", None)],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (parse_retry_after(when) or 0) <= 30


def test_wait_is_retry_after_capped_else_a_growing_backoff() -> None:
    policy = RetryPolicy(max_wait_s=10, backoff_s=1)
    assert policy.wait(0, 3) == 3
    assert policy.wait(0, 120) == 10
    assert 0.75 <= policy.wait(0, None) <= 1.25
    assert 3.0 <= policy.wait(2, None) <= 5.0


def test_the_client_needs_none_of_the_servers_dependencies() -> None:
    """Users import it in their own services: no Redis, no Litestar, no SAQ."""
    import subprocess
    import sys

    code = "import sys, extractor.client; print(sorted({'redis', 'litestar', 'saq', 'aiohttp'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
