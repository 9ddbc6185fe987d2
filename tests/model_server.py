"""A scripted model endpoint on a real loopback port: the model faked at the HTTP transport.

It serves a handler written against ``httpx2`` (``Request -> Response``, sync or async) from an aiohttp server
in a thread and event loop of its own, so the service under test reaches it exactly as it reaches a real
endpoint: over TCP, with its own client, timeouts and retries. A handler that raises ``httpx2.TimeoutException``
makes the server hang until the client gives up.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx2
from aiohttp import web

__all__ = ["Handler", "chat_completion", "model_list", "serve_model"]

Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]
HANG_S = 10.0  # longer than any client timeout the tests set
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding"})


def model_list() -> httpx2.Response:
    """The answer to ``GET /models``: one model, ``fake-model``."""
    return httpx2.Response(200, json={"object": "list", "data": [{"id": "fake-model", "object": "model"}]})


def chat_completion(
    content: str, *, finish_reason: str = "stop", prompt_tokens: int = 100, completion_tokens: int = 10
) -> httpx2.Response:
    """An OpenAI chat completion from ``fake-model`` whose message is ``content``."""
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


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
        await response.aread()
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        return web.Response(status=response.status_code, body=response.content, headers=headers)

    return handle


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
