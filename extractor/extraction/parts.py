"""How a document is cut to fit the model, and how its parts' answers become one result.

``PartPlanner`` knows the model's context window (found once) and counts tokens with the endpoint's tokenizer
(``budget.EndpointTokenCounter``). A text that clearly fits is one part without any counting: a token is at least
one byte of UTF-8 for the byte-level tokenizers in use, so a prompt of fewer bytes than the window's room cannot
overflow it. Only a longer text pays for counting and, if it does not fit, for ``split.split_to_fit``.

``merged_outcome`` turns the merge of the parts' answers (``merge.merge_results``) into what a result holds: the
object made valid again (a ``union`` can exceed ``maxItems``: such a field is nulled, and the repair logged), its
grounding in the original text, and the conflicts and failed parts in their wire form.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from extractor.errors import ExtractionFailedError, SchemaTooLargeError
from extractor.extraction.budget import (
    MESSAGE_OVERHEAD_TOKENS,
    Budget,
    ContextWindow,
    EndpointTokenCounter,
    ServerApi,
    prompt_overhead,
    resolve_window,
)
from extractor.extraction.grounding import FieldGrounding
from extractor.extraction.merge import MergedResult, PartResult, merge_results
from extractor.extraction.prompt import Message, build_messages
from extractor.extraction.result import ConflictCandidate, FailedPart
from extractor.extraction.split import Part, split_to_fit
from extractor.pointer import child_pointer
from extractor.registry.compiled import CompiledSchema
from extractor.settings import ExtractionSettings
from extractor.vocabulary import EnforcementLevel

__all__ = ["MIN_PART_TOKENS", "Merged", "PartPlanner", "Plan", "failed_part", "merged_outcome", "whole"]

log = logging.getLogger(__name__)

MIN_PART_TOKENS = 128
"""The least document room worth a model call: below it, a schema's prompt is refused rather than the document
cut into hundreds of parts."""

_OVERHEADS_KEPT = 256


@dataclass(frozen=True)
class Plan:
    """The parts of one document (one part: the whole text) and the budget each call runs within."""

    parts: list[Part]
    budget: Budget


def whole(text: str) -> list[Part]:
    return [Part(index=0, start=0, end=len(text), text=text)]


def _utf8_bytes(texts: Sequence[str]) -> int:
    return sum(len(text.encode()) for text in texts)


class PartPlanner:
    """The window and the token counter of one model endpoint, found once, and the plan of each document."""

    def __init__(self, server: ServerApi, settings: ExtractionSettings, *, context_tokens: int | None) -> None:
        self._server = server
        self._settings = settings
        self._configured = context_tokens
        self._window: ContextWindow | None = None
        self._counter: EndpointTokenCounter | None = None
        self._overheads: dict[tuple[str, EnforcementLevel], int] = {}
        self._upper_bounds: dict[tuple[str, EnforcementLevel, str | None], int] = {}
        self._lock = asyncio.Lock()

    async def _endpoint(self, model: str) -> tuple[ContextWindow, EndpointTokenCounter]:
        """The window and the counter, made on first use (the window may take a request to the endpoint)."""
        if self._window is None or self._counter is None:
            async with self._lock:
                if self._window is None or self._counter is None:
                    window = await resolve_window(
                        configured=self._configured, bundled=None, server=self._server, model=model
                    )
                    log.info("model context window: %d tokens (%s)", window.tokens, window.source)
                    self._counter = EndpointTokenCounter(self._server, model)
                    self._window = window
        return self._window, self._counter

    def narrow(self, tokens: int) -> None:
        """The endpoint refused a prompt as longer than its ``tokens``-token window: plan with that window from now
        on (unless a smaller one is known already)."""
        if self._window is not None and tokens >= self._window.tokens:
            return
        was = "unknown" if self._window is None else f"{self._window.tokens} tokens ({self._window.source})"
        log.warning(
            "the model endpoint refused a prompt as longer than its %d-token context window (the window was taken "
            "to be %s): documents are split for %d tokens from now on; set EXTRACTOR_MODEL_CONTEXT_TOKENS=%d",
            tokens,
            was,
            tokens,
            tokens,
        )
        self._window = ContextWindow(tokens, "the endpoint's refusal of a longer prompt")

    async def plan(self, schema: CompiledSchema, level: EnforcementLevel, text: str, model: str) -> Plan:
        """The parts ``text`` is extracted in; raises ``SchemaTooLargeError`` when no document fits at all."""
        window, counter = await self._endpoint(model)
        reserve = self._settings.max_tokens
        limit = self._settings.chunk_tokens
        quick = Budget.of(window.tokens, self._upper_bound(schema, level, counter), reserve)
        size = len(text.encode())
        if size <= quick.document and (limit is None or size <= limit):
            return Plan(whole(text), quick)  # fits by the byte bound: nothing to count
        messages = build_messages(schema, "")
        extra = self._extra(schema, level, counter)
        budget = Budget.of(window.tokens, await self._overhead(schema, level, counter, messages, extra), reserve)
        if budget.document < MIN_PART_TOKENS:
            raise SchemaTooLargeError(
                f"the prompt of schema {schema.version.ref} takes {budget.overhead} tokens and the answer "
                f"{reserve}: the model's {window.tokens}-token window ({window.source}) leaves "
                f"{max(budget.document, 0)} for the document; shorten the schema's descriptions, or lower "
                "EXTRACTOR_EXTRACTION__MAX_TOKENS",
                window=window.tokens,
                overhead=budget.overhead,
                reserve=reserve,
            )
        room = budget.document if limit is None else min(budget.document, limit)
        parts = await split_to_fit(text, room, counter, overlap=self._settings.chunk_overlap_chars)
        return Plan(parts, budget)

    def _upper_bound(self, schema: CompiledSchema, level: EnforcementLevel, counter: EndpointTokenCounter) -> int:
        """The prompt's size besides the document in UTF-8 bytes (at least its tokens), made once per schema
        version, level and counter dialect: rebuilding the prompt and dumping the schema on each request was most
        of the planner's cost (``bench/request_cpu.py``)."""
        key = (schema.version.hash, level, counter.dialect)
        if (known := self._upper_bounds.get(key)) is None:
            messages = build_messages(schema, "")
            extra = self._extra(schema, level, counter)
            contents = [m["content"] for m in messages] + extra
            known = self._upper_bounds[key] = _utf8_bytes(contents) + MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)
        return known

    @staticmethod
    def _extra(schema: CompiledSchema, level: EnforcementLevel, counter: EndpointTokenCounter) -> list[str]:
        """What the endpoint adds to the prompt: a hosted ``json_schema`` endpoint may put the schema in; one with
        a tokenizer of its own (llama.cpp, vLLM) turns it into a grammar instead."""
        if level is EnforcementLevel.JSON_SCHEMA and counter.dialect is None:
            return [json.dumps(schema.wire_schema)]
        return []

    async def _overhead(
        self,
        schema: CompiledSchema,
        level: EnforcementLevel,
        counter: EndpointTokenCounter,
        messages: list[Message],
        extra: list[str],
    ) -> int:
        """The prompt's tokens besides the document, counted once per schema version and level."""
        key = (schema.version.hash, level)
        if (known := self._overheads.get(key)) is not None:
            return known
        counted = await prompt_overhead(counter, messages, extra)
        if len(self._overheads) >= _OVERHEADS_KEPT:
            self._overheads.clear()
        self._overheads[key] = counted
        return counted


# --- the merged result ---------------------------------------------------------------------------------------


@dataclass
class Merged:
    """What the merge of a document's parts puts into its result."""

    data: dict[str, Any] | None
    fields: dict[str, FieldGrounding] | None
    conflicts: dict[str, list[ConflictCandidate]]
    repairs: list[str] = field(default_factory=list)


def failed_part(part: Part, exc: ExtractionFailedError) -> FailedPart:
    return FailedPart(index=part.index, start=part.start, end=part.end, problem=exc.problem().document())


def merged_outcome(schema: CompiledSchema, results: Sequence[PartResult]) -> Merged:
    """The parts' answers merged by the schema's rules, then made valid: a top-level field the merge made invalid
    is nulled (every top-level field is nullable) and its grounding dropped."""
    merged: MergedResult = merge_results(schema.version.json_schema, results)
    data, fields, conflicts = merged.data, merged.fields, merged.conflicts
    broken = sorted(schema.invalid_fields(data)) if data is not None else []
    gone = [child_pointer("", name) for name in broken]

    def kept(pointer: str) -> bool:
        return not any(pointer == g or pointer.startswith(g + "/") for g in gone)

    if data is not None and broken:
        data = {key: None if key in broken else value for key, value in data.items()}
        fields = None if fields is None else {pointer: found for pointer, found in fields.items() if kept(pointer)}
        conflicts = {pointer: found for pointer, found in conflicts.items() if kept(pointer)}
    return Merged(
        data=data,
        fields=fields,
        conflicts={
            pointer: [ConflictCandidate.model_validate(candidate.to_json()) for candidate in candidates]
            for pointer, candidates in conflicts.items()
        },
        repairs=[f"{pointer}: invalid after merging the parts, set to null" for pointer in gone],
    )
