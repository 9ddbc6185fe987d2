"""What an extraction reports while it runs, to an optional sink: the object so far (``partial``) and each re-ask
(``attempt``).

The sequencer (``service.py``) is the only source of events; the sink decides what they become. The JSON answer
passes none and the pipeline skips all of this; the SSE answer (``api/extract_stream.py``) forwards them, with a
``final`` event that is the JSON answer itself, so the two answers cannot disagree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from extractor.answers import AttemptEvent, PartialEvent
from extractor.extraction.merge import PartResult
from extractor.extraction.partial import PartialReader
from extractor.extraction.parts import merged_outcome
from extractor.pointer import format_pointer
from extractor.registry.compiled import CompiledSchema
from extractor.vocabulary import FieldState

__all__ = [
    "EventSink",
    "ExtractionEvent",
    "PartProgress",
    "attempt_started",
    "part_merged",
    "partial_feed",
    "top_level_properties",
]

ExtractionEvent = PartialEvent | AttemptEvent
EventSink = Callable[[ExtractionEvent], None]
"""Called in the extraction's task, in order. It must not block: the SSE answer puts each event on a queue."""


def top_level_properties(schema: Mapping[str, Any]) -> list[str]:
    """The fields a ``partial`` event reports ``pending`` before the model reaches them."""
    properties = schema.get("properties")
    return list(properties) if isinstance(properties, Mapping) else []


def partial_feed(events: EventSink, properties: Iterable[str], attempt: int) -> Callable[[str], None]:
    """The ``on_text`` of one streamed model call: it reads each piece of the answer and sends a ``partial`` event
    whenever the object so far changed."""
    reader = PartialReader(properties)

    def feed(piece: str) -> None:
        if (snapshot := reader.feed(piece)) is not None:
            events(PartialEvent(attempt=attempt, data=snapshot.data, fields=snapshot.fields))

    return feed


def attempt_started(events: EventSink, attempt: int, reason: str, errors: Sequence[str]) -> None:
    """A re-ask is sent: the object so far starts over."""
    events(AttemptEvent(attempt=attempt, reason=reason, errors=list(errors)))


def part_merged(
    events: EventSink, properties: Iterable[str], merged: Mapping[str, Any], part: int, parts: int, attempt: int = 1
) -> None:
    """The hook for a long document split into parts: once part ``part`` (from 1) of ``parts`` is merged, the merged
    object so far as a ``partial`` event. A value found is ``incomplete`` while parts remain (a later part may
    change it), ``complete`` after the last."""
    found = FieldState.COMPLETE if part >= parts else FieldState.INCOMPLETE
    states = dict.fromkeys(properties, FieldState.PENDING)
    states.update({key: found for key, value in merged.items() if value is not None})
    fields = {format_pointer([key]): state for key, state in states.items()}
    data = {key: value for key, value in merged.items() if value is not None}
    events(PartialEvent(attempt=attempt, data=data, fields=fields, part=part, parts=parts))


class _PartOutcome(Protocol):
    @property
    def result(self) -> PartResult | None: ...


Outcome = TypeVar("Outcome", bound=_PartOutcome)


class PartProgress:
    """The ``partial`` events of a document split into parts: as each part ends, the parts done so far merged.

    Parts run concurrently, so "part i of n" counts the parts done, whichever they are; their own model calls are
    not streamed (their pieces would interleave)."""

    def __init__(self, events: EventSink | None, schema: CompiledSchema, parts: int) -> None:
        self._events = events
        self._schema = schema
        self._parts = parts
        self._done = 0
        self._results: list[PartResult] = []

    async def track(self, outcome: Awaitable[Outcome]) -> Outcome:
        """Await one part's outcome and report it (nothing without a sink)."""
        done = await outcome
        if self._events is not None:
            self._done += 1
            if done.result is not None:
                self._results.append(done.result)
            merged = merged_outcome(self._schema, self._results).data if self._results else None
            properties = top_level_properties(self._schema.version.json_schema)
            part_merged(self._events, properties, merged or {}, self._done, self._parts)
        return done
