"""A request still running when the shutdown's grace period ends (``EXTRACTOR_SHUTDOWN_GRACE_S``) answers 503.

uvicorn cancels such a request's task and, if no response has started, sends a bare 500, which reads as a bug.
This middleware answers it with a problem document and ``Retry-After`` instead: the client should send the
request again, and another replica will take it. A response already started is cut off as before.
"""

from __future__ import annotations

import asyncio
import json

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send

__all__ = ["answer_cut_requests"]

_PROBLEM = json.dumps(
    {
        "type": "shutting-down",
        "title": "Shutting down",
        "status": 503,
        "detail": "this server stopped before the request finished; send it again and another server will answer it",
    }
).encode()
_HEADERS = [(b"content-type", b"application/problem+json"), (b"retry-after", b"1")]


def answer_cut_requests(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: a request cancelled before its response started answers 503 ``shutting-down``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, watch)
        except asyncio.CancelledError:
            if started:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the task ends with this answer; nothing else waits on it
            start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 503, "headers": _HEADERS}
            body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _PROBLEM, "more_body": False}
            await send(start)
            await send(body)

    return middleware
