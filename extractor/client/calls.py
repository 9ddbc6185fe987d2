"""Every call of the HTTP API as data: the request to send and how to read its answer, for both clients.

A builder here is the one place that knows a route: its method, path, body and answer type. ``Client`` and
``AsyncClient`` send what a builder returns; only their transport differs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from extractor.answers import STREAM_EVENT_MODELS, AttemptEvent, PartialEvent
from extractor.client.errors import error_of_problem
from extractor.client.models import Batch, BatchEvent, BatchResult, Health, Readiness
from extractor.errors import Problem
from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.registry.schema import SchemaDefinition, SchemaSummary, SchemaVersion

__all__ = [
    "Call",
    "Document",
    "Options",
    "StreamCall",
    "batch_events",
    "batch_results",
    "cancel_batch",
    "create_batch",
    "create_batch_ndjson",
    "extract",
    "extract_stream",
    "get_batch",
    "get_schema",
    "get_schema_version",
    "health",
    "list_schemas",
    "ready",
    "register_schema",
    "retire_schema",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

NDJSON = "application/x-ndjson"
Options: TypeAlias = ExtractOptions | Mapping[str, Any] | None
Document: TypeAlias = tuple[str, str] | Mapping[str, str]
"""A batch document: ``(id, text)`` or ``{"id": ..., "text": ...}``."""


@dataclass(frozen=True, kw_only=True)
class Request:
    """What to send. ``answers`` are error statuses that are an answer rather than a problem (``/readyz``'s 503)."""

    method: str
    path: str
    params: Mapping[str, str | int | bool] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    answers: frozenset[int] = frozenset()

    def build(self, http: httpx.Client | httpx.AsyncClient, headers: Mapping[str, str]) -> httpx.Request:
        return http.build_request(
            self.method,
            self.path,
            params=self.params,
            json=self.json,
            content=self.content,
            headers={**headers, **self.headers},
        )


@dataclass(frozen=True, kw_only=True)
class Call(Request, Generic[T]):
    """A call answered in one piece."""

    read: Callable[[httpx.Response], T]


@dataclass(frozen=True, kw_only=True)
class StreamCall(Request, Generic[T]):
    """A call answered line by line (NDJSON, server-sent events): ``decoder()`` makes a fresh line decoder, which
    returns an item when a line completes one."""

    decoder: Callable[[], Callable[[str], T | None]]


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: cls.model_validate_json(response.content)


def _models(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]  # a runtime type argument
    return lambda response: adapter.validate_json(response.content)


def _options(options: Options) -> dict[str, Any]:
    """The options the caller set, checked here so that a typo fails before anything is sent."""
    return ExtractOptions.model_validate(options or {}).model_dump(mode="json", exclude_unset=True)


def extract(schema: str, text: str, *, options: Options = None) -> Call[ExtractionResult]:
    """Extract from one document with ``schema`` (``receipt`` for the latest version, ``receipt@3`` for one)."""
    body = {"schema": schema, "text": text, "options": _options(options)}
    return Call(method="POST", path="/v1/extract", json=body, read=_model(ExtractionResult))


StreamEvent: TypeAlias = PartialEvent | AttemptEvent | ExtractionResult


def extract_stream(schema: str, text: str, *, options: Options = None) -> StreamCall[StreamEvent]:
    """The same extraction as server-sent events: ``PartialEvent`` (the object so far) and ``AttemptEvent`` (a
    re-ask) as the model writes, then the ``ExtractionResult``, the last item. An ``error`` event raises its typed
    exception, as the JSON answer's problem would; closing the iterator early hangs up, which stops the model."""
    body = {"schema": schema, "text": text, "options": _options(options)}
    headers = {"Accept": "text/event-stream"}
    return StreamCall(method="POST", path="/v1/extract", json=body, headers=headers, decoder=_extraction_events)


def register_schema(name: str, definition: SchemaDefinition | Mapping[str, Any]) -> Call[SchemaVersion]:
    """Register ``definition`` as the next version of ``name``; content equal to the latest registers nothing and
    answers the latest."""
    if isinstance(definition, SchemaDefinition):
        definition = definition.model_dump(mode="json", exclude_none=True)
    return Call(method="PUT", path=f"/v1/schemas/{name}", json=dict(definition), read=_model(SchemaVersion))


def list_schemas() -> Call[list[SchemaSummary]]:
    """The latest version of every schema this API key sees, the bundled ones included."""
    return Call(method="GET", path="/v1/schemas", read=_models(SchemaSummary))


def get_schema(name: str) -> Call[SchemaSummary]:
    """The latest version of ``name``."""
    return Call(method="GET", path=f"/v1/schemas/{name}", read=_model(SchemaSummary))


def get_schema_version(name: str, version: int) -> Call[SchemaVersion]:
    """One version of ``name``; versions stay readable after the schema is retired."""
    return Call(method="GET", path=f"/v1/schemas/{name}/versions/{version}", read=_model(SchemaVersion))


def retire_schema(name: str) -> Call[SchemaSummary]:
    """Retire ``name``: new extractions refuse it, its versions stay readable."""
    return Call(method="DELETE", path=f"/v1/schemas/{name}", read=_model(SchemaSummary))


def _document(document: Document) -> dict[str, str]:
    if isinstance(document, tuple):
        return {"id": document[0], "text": document[1]}
    return {"id": document["id"], "text": document["text"]}


def create_batch(
    schema: str, documents: Iterable[Document], *, options: Options = None, idempotency_key: str | None = None
) -> Call[Batch]:
    """Submit documents for extraction in the background. The ``Idempotency-Key`` (a fresh one unless given) makes
    sending it again safe: the service answers the batch it already made."""
    body = {"schema": schema, "documents": [_document(d) for d in documents], "options": _options(options)}
    headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    return Call(method="POST", path="/v1/batches", json=body, headers=headers, read=_model(Batch))


def create_batch_ndjson(
    schema: str, ndjson: bytes | str, *, options: Options = None, idempotency_key: str | None = None
) -> Call[Batch]:
    """Submit documents given as NDJSON, one ``{"id", "text"}`` per line, without parsing them here."""
    content = ndjson.encode() if isinstance(ndjson, str) else ndjson
    params = {"schema": schema, "options": json.dumps(_options(options))}
    headers = {"Content-Type": NDJSON, "Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    return Call(method="POST", path="/v1/batches", params=params, content=content, headers=headers, read=_model(Batch))


def get_batch(batch_id: str) -> Call[Batch]:
    """A batch's progress: counts by item status, times, documents per second."""
    return Call(method="GET", path=f"/v1/batches/{batch_id}", read=_model(Batch))


def cancel_batch(batch_id: str) -> Call[Batch]:
    """Cancel a batch: nothing new starts, running calls abort, finished results stay. Answers once it stopped."""
    return Call(method="DELETE", path=f"/v1/batches/{batch_id}", read=_model(Batch))


def batch_results(batch_id: str, *, offset: int = 0, wait: bool = False) -> StreamCall[BatchResult]:
    """A batch's results in submission order, from ``offset``. Without ``wait`` they stop before the first
    unfinished document (ask again from where they stopped); with it they follow the batch to its end."""
    params: dict[str, str | int | bool] = {"offset": offset, **({"wait": "true"} if wait else {})}
    return StreamCall(method="GET", path=f"/v1/batches/{batch_id}/results", params=params, decoder=_ndjson_results)


def batch_events(batch_id: str) -> StreamCall[BatchEvent]:
    """A batch's progress as it changes, until the ``final`` event."""
    return StreamCall(method="GET", path=f"/v1/batches/{batch_id}/events", decoder=lambda: _sse_data(BatchEvent))


def health() -> Call[Health]:
    """Liveness: the process answers."""
    return Call(method="GET", path="/healthz", read=_model(Health))


def ready() -> Call[Readiness]:
    """Readiness: whether Redis and the model endpoint answer. Not ready is an answer here, not an error."""
    return Call(method="GET", path="/readyz", answers=frozenset({503}), read=_model(Readiness))


def _ndjson_results() -> Callable[[str], BatchResult | None]:
    return lambda line: BatchResult.from_line(line) if line.strip() else None


def _extraction_events() -> Callable[[str], StreamEvent | None]:
    """A decoder of a streamed extraction's events: each read as the model its ``event`` names; ``error`` raises."""
    name: list[str] = []
    data: list[str] = []

    def feed(line: str) -> StreamEvent | None:
        field_name, _, value = line.partition(":")
        if line:
            if field_name in ("event", "data"):
                (name if field_name == "event" else data).append(value.removeprefix(" "))
            return None
        if not data:
            return None
        kind, payload = (name[-1] if name else "message"), "\n".join(data)
        name.clear()
        data.clear()
        model = STREAM_EVENT_MODELS.get(kind)  # type: ignore[call-overload]  # an event name is a str
        if model is Problem:
            raise error_of_problem(Problem.model_validate_json(payload))
        return None if model is None else model.model_validate_json(payload)

    return feed


def _sse_data(cls: type[M]) -> Callable[[str], M | None]:
    """A server-sent-events decoder: the ``data`` lines of an event, read as ``cls`` when its blank line ends it."""
    data: list[str] = []

    def feed(line: str) -> M | None:
        name, _, value = line.partition(":")
        if line:
            if name == "data":
                data.append(value.removeprefix(" "))
            return None
        if not data:
            return None
        item = cls.model_validate_json("\n".join(data))
        data.clear()
        return item

    return feed
