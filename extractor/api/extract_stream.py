"""The server-sent-events answer of ``POST /v1/extract`` (``Accept: text/event-stream``).

The extraction runs in a task of its own, with an event sink that puts each event on a queue; this answer sends
what the queue holds, a comment when it held nothing for ``heartbeat_s``, and ends with ``final`` (the string
``extract_json`` returns: the very body of the JSON answer) or ``error`` (the problem document the JSON answer
would carry). When the client hangs up, Litestar cancels this answer, and its ``finally`` cancels the extraction:
the model call is dropped at once, and nothing unfinished reaches the cache.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from litestar import Request
from litestar.openapi.spec import OpenAPIResponse, Operation
from litestar.response import ServerSentEventMessage

from extractor import errors
from extractor.answers import PartialEvent
from extractor.api.problems import as_domain_error
from extractor.extraction.events import EventSink, ExtractionEvent
from extractor.vocabulary import StreamEventType

__all__ = ["EVENT_STREAM", "STREAM_DOC_STATUS", "StreamedOperation", "extraction_events", "problem_of", "wants_events"]

EVENT_STREAM = "text/event-stream"
STREAM_DOC_STATUS = 2000
"""Not a status: the key under which the route declares its event stream for OpenAPI; ``StreamedOperation`` moves
it into the 200 answer beside the JSON one (Litestar declares one media type per status)."""

log = logging.getLogger("extractor")

Extraction = Callable[[EventSink], Awaitable[str]]
"""Runs the extraction with the given sink; returns the JSON answer."""


def wants_events(request: Request[Any, Any, Any]) -> bool:
    """Whether the client prefers server-sent events to JSON (``Accept``); JSON is the default.

    Only an ``Accept`` naming a ``text/`` type can prefer the stream (``*/*`` picks JSON, listed first): any other,
    the usual ``*/*`` included, is answered without parsing the header (``bench/request_cpu.py``)."""
    if "text/" not in request.headers.get("accept", "").lower():
        return False
    return request.accept.best_match(["application/json", EVENT_STREAM], default="application/json") == EVENT_STREAM


def problem_of(exc: Exception, store_detail: Callable[[], str]) -> errors.Problem:
    """The problem document the JSON answer would carry for ``exc``, mapped and logged as the app's handlers do."""
    return as_domain_error(exc, "POST /v1/extract (stream)", store_detail).problem()


def _problem_json(problem: Callable[[Exception], errors.Problem], exc: Exception) -> str:
    """The problem document of ``exc`` as JSON; a failure to make one is a bug, answered as such (never a stream
    that waits forever for its last event)."""
    try:
        return pydantic_core.to_json(problem(exc).document()).decode()
    except Exception as bug:
        log.exception("bug: no problem document for %r", exc, exc_info=bug)
        return pydantic_core.to_json(errors.InternalError().problem().document()).decode()


def _event_type(event: ExtractionEvent) -> StreamEventType:
    return StreamEventType.PARTIAL if isinstance(event, PartialEvent) else StreamEventType.ATTEMPT


async def extraction_events(
    extraction: Extraction, problem: Callable[[Exception], errors.Problem], *, heartbeat_s: float
) -> AsyncIterator[ServerSentEventMessage]:
    """The events of one extraction, each with an ``id``; the last is ``final`` or ``error``."""
    queue: asyncio.Queue[tuple[StreamEventType, str]] = asyncio.Queue()

    def sink(event: ExtractionEvent) -> None:
        queue.put_nowait((_event_type(event), event.model_dump_json()))

    async def run() -> None:
        try:
            kind, data = StreamEventType.FINAL, await extraction(sink)
        except Exception as exc:  # every failure is an answer here, as the app's error handlers make it one
            kind, data = StreamEventType.ERROR, _problem_json(problem, exc)
        queue.put_nowait((kind, data))

    task = asyncio.create_task(run())
    ids = itertools.count(1)
    try:
        while True:
            try:
                kind, data = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="ping")
                continue
            yield ServerSentEventMessage(data=data, event=kind.value, id=next(ids))
            if kind in (StreamEventType.FINAL, StreamEventType.ERROR):
                return
    finally:
        task.cancel()  # the client hung up (or the stream ended): stop paying for the model at once


@dataclass
class StreamedOperation(Operation):
    """The OpenAPI operation of ``POST /v1/extract``: its 200 answer is JSON or, on request, an event stream."""

    def __post_init__(self) -> None:
        responses = self.responses or {}
        streamed, answer = responses.pop(str(STREAM_DOC_STATUS), None), responses.get("200")
        if isinstance(streamed, OpenAPIResponse) and isinstance(answer, OpenAPIResponse) and streamed.content:
            answer.content = {**(answer.content or {}), **streamed.content}
