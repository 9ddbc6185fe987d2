"""``POST /v1/extract``: one document, answered inline: JSON, or server-sent events on request
(``api/extract_stream.py``)."""

from __future__ import annotations

import functools
import time
from typing import Any

from litestar import Controller, MediaType, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_200_OK
from pydantic import BaseModel, ConfigDict, Field

from extractor.answers import ExtractionStreamEvent
from extractor.api.extract_stream import (
    EVENT_STREAM,
    STREAM_DOC_STATUS,
    StreamedOperation,
    extraction_events,
    problem_of,
    wants_events,
)
from extractor.api.problems import problems
from extractor.extraction.events import EventSink
from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.extraction.service import ExtractionService
from extractor.settings import Settings
from extractor.telemetry.logs import log_extraction
from extractor.telemetry.report import ExtractionReport

__all__ = ["ExtractController", "ExtractRequest"]


class ExtractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_ref: str = Field(alias="schema", description="`receipt` (latest version) or `receipt@3`.", min_length=1)
    text: str = Field(description="The document.")
    options: ExtractOptions = Field(default_factory=ExtractOptions)


class ExtractController(Controller):
    path = "/v1/extract"
    tags = ["extraction"]

    @post(
        "/",
        summary="Extract structured data from one document",
        description="JSON by default. With `Accept: text/event-stream`, the same extraction as server-sent events: "
        "the object so far as the model writes it (`partial`), each re-ask (`attempt`), then the JSON body as `final` "
        "or the problem document as `error`. Hanging up cancels the model call; nothing unfinished is cached.",
        operation_id="extract",
        operation_class=StreamedOperation,
        status_code=HTTP_200_OK,
        responses={
            HTTP_200_OK: ResponseSpec(ExtractionResult, description="The extraction", generate_examples=False),
            STREAM_DOC_STATUS: ResponseSpec(
                ExtractionStreamEvent, media_type=EVENT_STREAM, description="Events", generate_examples=False
            ),
            **problems(400, 404, 413, 422, 502, 504),
        },
    )
    async def extract(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ExtractRequest],
        extraction: NamedDependency[ExtractionService],
        tenant: NamedDependency[str],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        report, started = ExtractionReport(), time.perf_counter()

        async def run(events: EventSink | None = None) -> str:
            try:
                # Already JSON (a cache hit is never parsed); Litestar's serializer would do model_dump, then msgspec.
                return await extraction.extract_json(
                    tenant, data.schema_ref, data.text, data.options, report, events=events
                )
            finally:
                text = data.text if settings.log_documents else None
                log_extraction("extract", report, time.perf_counter() - started, text)

        if wants_events(request):
            problem = functools.partial(problem_of, store_detail=request.app.state.runtime.readiness.store_detail)
            return ServerSentEvent(extraction_events(run, problem, heartbeat_s=settings.stream_heartbeat_s))
        return Response((await run()).encode(), media_type=MediaType.JSON)
