"""The JSON answers of the HTTP API besides an extraction result: batches, their events and result lines, health.

Plain pydantic, imported by the service that builds them and by the client that reads them, so each shape is
written once and the OpenAPI document describes what is sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from extractor.errors import Problem
from extractor.extraction.result import ExtractionResult
from extractor.vocabulary import BatchStatus, FieldState, ItemStatus, StreamEventType

__all__ = [
    "STREAM_EVENT_MODELS",
    "AttemptEvent",
    "Batch",
    "BatchEvent",
    "BatchResultLine",
    "CancelledLine",
    "ExtractedLine",
    "ExtractionStreamEvent",
    "FailedLine",
    "Health",
    "PartialEvent",
    "Readiness",
]


class Batch(BaseModel):
    """A batch's progress (``GET /v1/batches/{id}``): counts by item status, times, documents per second."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    batch_id: str
    status: BatchStatus
    schema_ref: str = Field(alias="schema", description="The exact version the batch runs with, e.g. `receipt@3`.")
    total: int = Field(description="Documents in the batch.")
    done: int = Field(description="Documents in a final status (ok, empty, failed, cancelled).")
    counts: dict[ItemStatus, int] = Field(default_factory=dict, description="Documents per status.")
    created_at: float = Field(description="Unix time.")
    started_at: float | None = Field(None, description="Unix time the first document started.")
    finished_at: float | None = Field(None, description="Unix time the last document became final.")
    documents_per_second: float = Field(0.0, description="Processed (not cancelled) documents per second since start.")


class BatchEvent(Batch):
    """One server-sent progress event (``GET /v1/batches/{id}/events``); the last one of a batch is ``final``."""

    final: bool = Field(description="The last event: the batch is finished or cancelled.")


class ExtractedLine(ExtractionResult):
    """A result line of a document that was extracted (``ok`` or ``empty``): the ``/v1/extract`` result, with the
    document's id and index."""

    id: str = Field(description="The document's id, as submitted.")
    index: int = Field(description="The document's position in the batch, from 0.")


class FailedLine(BaseModel):
    """A result line of a document that failed: its problem document, without an HTTP status."""

    id: str
    index: int
    status: Literal[ItemStatus.FAILED]
    error: Problem


class CancelledLine(BaseModel):
    """A result line of a document the cancel stopped before it finished."""

    id: str
    index: int
    status: Literal[ItemStatus.CANCELLED]


BatchResultLine = ExtractedLine | FailedLine | CancelledLine
"""One line of ``GET /v1/batches/{id}/results``."""


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(Health):
    """``/readyz``: ``ready`` or ``not ready``, and each dependency's check: ``ok``, or what is wrong with it."""

    checks: dict[str, str] = Field(default_factory=dict, examples=[{"redis": "ok", "model": "ok"}])

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class PartialEvent(BaseModel):
    """A ``partial`` event of a streamed extraction (``POST /v1/extract``, ``Accept: text/event-stream``): the
    object so far, as the model writes it. Neither validated nor grounded yet: the ``final`` event is."""

    attempt: int = Field(description="The model call it comes from, from 1; after an `attempt` event it starts over.")
    data: dict[str, Any] = Field(
        description="The values so far. A number, boolean or null appears once written in full; a string may be cut "
        "short while its field is `incomplete`."
    )
    fields: dict[str, FieldState] = Field(
        description="Each top-level field's state by JSON Pointer: `pending` (not reached), `incomplete` (being "
        "written), `complete` (followed by `,` or `}`: it can no longer change)."
    )
    part: int | None = Field(None, description="A long document split into parts: the part just merged, from 1.")
    parts: int | None = Field(None, description="A long document split into parts: how many.")


class AttemptEvent(BaseModel):
    """An ``attempt`` event of a streamed extraction: the answer was refused and the model is asked again; the
    ``partial`` events that follow start from an empty object."""

    attempt: int = Field(description="The model call starting now, from 2.")
    reason: str = Field(description="`not_json` or `invalid`: why the previous answer was refused.")
    errors: list[str] = Field(description="What was wrong with it, as sent back to the model.")


STREAM_EVENT_MODELS: dict[StreamEventType, type[BaseModel]] = {
    StreamEventType.PARTIAL: PartialEvent,
    StreamEventType.ATTEMPT: AttemptEvent,
    StreamEventType.FINAL: ExtractionResult,
    StreamEventType.ERROR: Problem,
}
"""What the ``data`` of each event of a streamed extraction is."""


class ExtractionStreamEvent(BaseModel):
    """One server-sent event of a streamed extraction (``POST /v1/extract`` with ``Accept: text/event-stream``),
    sent as ``id:``, ``event:`` and ``data:`` lines; an idle stream sends a comment line (``: ping``). Events come
    in this order: ``partial`` events (an ``attempt`` event starts them over), then one ``final`` or ``error``."""

    id: str = Field(description="1, 2, 3... in the order sent.")
    event: StreamEventType
    data: PartialEvent | AttemptEvent | ExtractionResult | Problem = Field(
        description="`partial`: the object so far; `attempt`: a re-ask started; `final`: the JSON body the call "
        "answers without streaming (a cache hit sends only this); `error`: the problem document it would answer, "
        "its `status` included."
    )
