"""The model faked at the HTTP transport: a handler served on a real loopback port, and ``FakeModel``'s script.

``serve_model`` serves a handler written against ``httpx2`` (``Request -> Response``, sync or async) from an aiohttp
server in a thread and event loop of its own, so the service under test reaches it exactly as it reaches a real
endpoint: over TCP, with its own client, timeouts and retries. A handler that raises ``httpx2.TimeoutException``
makes the server hang until the client gives up. ``FakeModel`` is such a handler, scripted answer by answer.

A request with ``stream: true`` is answered as server-sent events, the way OpenAI and llama.cpp stream: a handler
returns an ``httpx2.Response`` of type ``text/event-stream`` whose content is an async iterator (``sse_chunks``), and
the server sends each piece as it comes. ``FakeModel`` counts the streams its client hung up on (``hung_up``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from aiohttp import web

__all__ = ["FakeModel", "Handler", "chat_completion", "model_list", "serve_model", "sse_chunks", "streamed"]

Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]
HANG_S = 10.0  # longer than any client timeout the tests set
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


def model_list() -> httpx2.Response:
    """The answer to ``GET /models``: one model, ``fake-model``."""
    return httpx2.Response(200, json={"object": "list", "data": [{"id": "fake-model", "object": "model"}]})


def chat_completion(
    content: str,
    *,
    finish_reason: str = "stop",
    prompt_tokens: int = 100,
    completion_tokens: int = 10,
    logprobs: list[tuple[str, float]] | None = None,
) -> httpx2.Response:
    """An OpenAI chat completion from ``fake-model`` whose message is ``content`` (with ``logprobs``: its tokens and
    their log-probabilities, as ``choices[0].logprobs.content``)."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
    }
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "top_logprobs": []} for t, lp in logprobs]}
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def _sse(payload: dict[str, Any] | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


def _chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": choices,
    }


async def sse_chunks(
    content: str,
    *,
    piece_chars: int = 4,
    delay_s: float = 0.0,
    usage: tuple[int, int] | None = (100, 10),
    finish_reason: str = "stop",
    stall_after: int | None = None,
) -> AsyncIterator[bytes]:
    """A chat completion streamed as OpenAI does: a role chunk, ``content`` in pieces of ``piece_chars`` each
    ``delay_s`` apart, the finish chunk, a usage chunk (``(prompt, completion)`` tokens, or None), ``[DONE]``.
    ``stall_after``: after that many pieces, go silent (until the client gives up)."""
    yield _sse(_chunk({"role": "assistant", "content": ""}))
    for count, start in enumerate(range(0, len(content), piece_chars)):
        if stall_after is not None and count == stall_after:
            await asyncio.sleep(HANG_S)
        if delay_s:
            await asyncio.sleep(delay_s)
        yield _sse(_chunk({"content": content[start : start + piece_chars]}))
    yield _sse(_chunk({}, finish_reason))
    if usage is not None:
        prompt, completion = usage
        counts = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        yield _sse({**_chunk(None), "usage": counts})
    yield _sse("[DONE]")


def streamed(chunks: AsyncIterator[bytes]) -> httpx2.Response:
    """The answer of a streamed chat completion: ``chunks`` sent as they come."""
    return httpx2.Response(200, content=chunks, headers={"content-type": "text/event-stream"})


@dataclass
class FakeModel:
    """A scripted OpenAI-compatible endpoint. Each chat request takes the next scripted step; the last repeats."""

    steps: list[tuple[Any, ...]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    hung_up: int = 0
    """Streamed answers the client closed before their end."""
    hang_up: threading.Event = field(default_factory=threading.Event)
    """Set when a client closes a streamed answer before its end."""
    context_window: int | None = None
    """When set, a chat request whose prompt (``prompt_size``) and ``max_tokens`` exceed it is refused with 400, in
    the words of OpenAI, vLLM and llama-cpp-python; the refusals are counted in ``refused``."""
    refused: int = 0

    def reply(self, content: str | dict[str, Any], *, finish_reason: str = "stop", tokens: int = 10) -> FakeModel:
        text = content if isinstance(content, str) else json.dumps(content)
        self.steps.append(("reply", text, finish_reason, tokens))
        return self

    def reply_tokens(self, tokens: list[tuple[str, float]]) -> FakeModel:
        """Answer with the text of ``tokens``; a request that asks for ``logprobs`` also gets each token's."""
        self.steps.append(("tokens", tokens))
        return self

    def reply_by_document(self, answer: Callable[[str], str | dict[str, Any]]) -> FakeModel:
        """Answer each call with ``answer(document)``: the text between the user message's delimiters, so that
        concurrent calls for the parts of one document each get their own answer whatever their order."""
        self.steps.append(("by_document", answer))
        return self

    def fail(self, status: int, headers: dict[str, str] | None = None) -> FakeModel:
        self.steps.append(("fail", status, headers or {}))
        return self

    def too_long(self, window: int) -> FakeModel:
        """Refuse the call as longer than a ``window``-token context, whatever its length."""
        self.steps.append(("too_long", window))
        return self

    def time_out(self) -> FakeModel:
        self.steps.append(("timeout",))
        return self

    def stream(
        self,
        content: str | dict[str, Any],
        *,
        piece_chars: int = 4,
        delay_s: float = 0.0,
        stall_after: int | None = None,
        usage: bool = True,
        tokens: int = 10,
    ) -> FakeModel:
        """Answer a streamed request piece by piece (``reply`` streams too, at once, in pieces of 4 characters);
        a request without ``stream`` gets the whole reply."""
        text = content if isinstance(content, str) else json.dumps(content)
        options = {"piece_chars": piece_chars, "delay_s": delay_s, "stall_after": stall_after}
        self.steps.append(("stream", text, options, usage, tokens))
        return self

    @property
    def chat_calls(self) -> int:
        return len(self.requests)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return model_list()
        if not request.url.path.endswith("/chat/completions"):  # /props, /tokenize: not an OpenAI endpoint's
            return httpx2.Response(404, json={"error": {"message": "not found", "type": "invalid_request_error"}})
        body = json.loads(request.content)
        if (
            self.context_window is not None
            and prompt_size(body) + int(body.get("max_tokens") or 0) > self.context_window
        ):
            self.refused += 1
            return _too_long(body, self.context_window)
        self.requests.append(body)
        step: tuple[Any, ...] = (
            self.steps[min(len(self.requests), len(self.steps)) - 1] if self.steps else ("reply", "{}", "stop", 1)
        )
        kind = step[0]
        if kind == "timeout":
            raise httpx2.ReadTimeout("scripted timeout", request=request)
        if kind == "raw":
            return httpx2.Response(200, content=step[2], headers={"content-type": step[1]})
        if kind == "too_long":
            self.refused += 1
            return _too_long(self.requests[-1], step[1])
        if kind == "fail":
            body = {"error": {"message": f"scripted {step[1]}", "type": "server_error"}}
            return httpx2.Response(step[1], json=body, headers=step[2])
        if kind == "tokens":
            asked = self.requests[-1].get("logprobs") is True
            return chat_completion("".join(t for t, _ in step[1]), logprobs=step[1] if asked else None)
        if kind == "by_document":
            answer = step[1](_document(self.requests[-1]))
            text = answer if isinstance(answer, str) else json.dumps(answer)
            return chat_completion(text, prompt_tokens=prompt_size(self.requests[-1]))
        if kind == "stream":
            _, text, options, usage, tokens = step
            if not self.requests[-1].get("stream"):
                return chat_completion(text, completion_tokens=tokens)
            return self._streamed(text, "stop", tokens, usage=usage, **options)
        _, text, finish_reason, tokens = step
        if self.requests[-1].get("stream"):
            return self._streamed(text, finish_reason, tokens)
        return chat_completion(text, finish_reason=finish_reason, completion_tokens=tokens)

    def _streamed(
        self, text: str, finish_reason: str, tokens: int, *, usage: bool = True, **options: Any
    ) -> httpx2.Response:
        asked = (self.requests[-1].get("stream_options") or {}).get("include_usage")
        counts = (100, tokens) if usage and asked else None
        return streamed(self._watched(sse_chunks(text, finish_reason=finish_reason, usage=counts, **options)))

    async def _watched(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks``, counting a client that hangs up before the end."""
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
            finished = True
        finally:
            if not finished:
                self.hung_up += 1
                self.hang_up.set()


def _too_long(body: dict[str, Any], window: int) -> httpx2.Response:
    """A 400 refusal of a prompt longer than the context, in the words of OpenAI, vLLM and llama-cpp-python."""
    prompt, answer = prompt_size(body), int(body.get("max_tokens") or 0)
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested {prompt + answer} tokens "
        f"({prompt} in the messages, {answer} in the completion). Please reduce the length of the messages or "
        "completion."
    )
    error = {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded"}
    return httpx2.Response(400, json={"error": error})


def prompt_size(body: dict[str, Any]) -> int:
    """A request's prompt tokens as ``reply_by_document`` reports them: 3 characters a token, 8 a message."""
    return sum(-(-len(str(m["content"])) // 3) + 8 for m in body["messages"])


def _document(body: dict[str, Any]) -> str:
    """The document of a chat request: the first user message, between its ``<<<`` and ``>>>`` lines."""
    first = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
    return str(first).partition("<<<\n")[2].rpartition("\n>>>")[0]


def _aiohttp_handler(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        forwarded = httpx2.Request(request.method, str(request.url), headers=dict(request.headers), content=body)
        try:
            answer = handler(forwarded)
            response = await answer if inspect.isawaitable(answer) else answer
        except httpx2.TimeoutException:
            await asyncio.sleep(HANG_S)
            raise
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return await _send_stream(request, response, headers)
        await response.aread()
        return web.Response(status=response.status_code, body=response.content, headers=headers)

    return handle


async def _send_stream(request: web.Request, response: httpx2.Response, headers: dict[str, str]) -> web.StreamResponse:
    """Send a streamed answer piece by piece; when the client hangs up, the pieces' iterator is closed at once."""
    out = web.StreamResponse(status=response.status_code, headers=headers)
    await out.prepare(request)
    pieces = response.aiter_raw()
    try:
        async for piece in pieces:
            await out.write(piece)
    finally:
        await pieces.aclose()
    await out.write_eof()
    return out


@contextmanager
def serve_model(handler: Handler) -> Iterator[str]:
    """Serve ``handler`` at ``http://127.0.0.1:PORT/v1`` until the block ends; yields that base URL."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _aiohttp_handler(handler))
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="fake-model", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the fake model server did not start")
    try:
        yield f"http://127.0.0.1:{port[0]}/v1"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
