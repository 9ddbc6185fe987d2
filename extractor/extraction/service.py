"""The one place that knows the order of an extraction: schema, cache, prompt, model, repair, validate, ground, empty.

A document too long for one model call is split (``parts.PartPlanner``), each part runs the same call, repair,
validate and ground steps (``_extract_parts``, the one per-part loop), and the parts' answers are merged
(``parts.merged_outcome``); a document that fits is one part and takes the single-call path unchanged.

Each step is a plain function in its own module; this class only sequences them and keeps the accounts
(attempts, usage, repairs, timings, and the ``ExtractionReport`` that metrics, the trace and the log line read).
Each step is a span of the extraction's trace when tracing is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.exceptions import RedisError

from extractor.errors import (
    ContextOverflowError,
    ExtractionFailedError,
    ExtractorError,
    IncompleteExtractionError,
    PayloadTooLargeError,
    TruncatedOutputError,
)
from extractor.extraction.blanks import null_blanks
from extractor.extraction.budget import MESSAGE_OVERHEAD_TOKENS, Budget, EstimatedTokenCounter
from extractor.extraction.cache import cache_digest, hit_json, stored_status
from extractor.extraction.coerce import coerce
from extractor.extraction.confidence import answer_confidences
from extractor.extraction.enforcement import EnforcementProber, response_format
from extractor.extraction.events import EventSink, PartProgress, attempt_started, partial_feed, top_level_properties
from extractor.extraction.grounding import FieldGrounding, apply_strict, ground
from extractor.extraction.merge import PartResult
from extractor.extraction.model import ModelClient, ModelReply
from extractor.extraction.parts import PartPlanner, Plan, failed_part, merged_outcome
from extractor.extraction.prompt import PROMPT_VERSION, Message, build_messages, build_reask
from extractor.extraction.relevance import decide
from extractor.extraction.repair import RepairError, parse_json
from extractor.extraction.result import ExtractionResult, ExtractOptions, FailedPart, ResolvedOptions, Usage
from extractor.extraction.results_log import ResultsLog
from extractor.extraction.salvage import Salvaged, salvage_invalid, salvage_truncated
from extractor.extraction.split import Part
from extractor.registry.compiled import CompiledSchema
from extractor.settings import ExtractionSettings
from extractor.telemetry.metrics import ExtractionMetrics, endpoint_label
from extractor.telemetry.report import ExtractionReport
from extractor.telemetry.tracing import Tracing, trace_id
from extractor.vocabulary import EnforcementLevel, GroundingMode, ResultStatus

__all__ = ["ExtractionService", "ModelGate", "ResultStore", "SchemaSource"]

ModelGate = Callable[[], AbstractAsyncContextManager[None]]
"""Entered around each model call: the batch worker's permit. What it raises ends the extraction."""

log = logging.getLogger(__name__)


@dataclass
class _Attempts:
    """What the model was asked and answered so far in one extraction."""

    messages: list[Message]
    count: int = 0
    usage: Usage = field(default_factory=Usage)
    repairs: list[str] = field(default_factory=list)
    last_reply: str = ""
    errors: list[str] = field(default_factory=list)
    failure: str = ""
    """Why the last answer was refused: ``not_json`` or ``invalid``."""
    prompt_tokens: int = 0
    """The last call's prompt, as the endpoint counted it."""
    reply: ModelReply | None = None
    """The answer the data came from (its token log-probabilities give each value's confidence)."""
    last_data: Any = None
    """The last answer parsed and coerced, valid or not: what is salvaged when the attempts run out."""
    truncated: bool = False
    samples: list[Any] = field(default_factory=list)
    """Further answers to the same prompt (``options.samples``), for the agreement part of confidence."""


@dataclass
class _PartOutcome:
    """One part of a long document, extracted (``result``) or failed (``error``), and what it cost."""

    part: Part
    timings: dict[str, float]
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    repairs: list[str] = field(default_factory=list)
    result: PartResult | None = None
    error: ExtractionFailedError | None = None


@dataclass(frozen=True)
class _PartRun:
    """What every part of one document is extracted with."""

    schema: CompiledSchema
    level: EnforcementLevel
    options: ResolvedOptions
    gate: ModelGate | None
    report: ExtractionReport
    events: EventSink | None = None


_SAMPLE_TEMPERATURE = 0.7
"""The least temperature of the extra answers of ``options.samples``: at 0 they would all be the first one."""

_MIN_ANSWER_TOKENS = 16
"""A re-ask whose answer would have less room than this is not sent: it could only be truncated."""

_ESTIMATE = EstimatedTokenCounter()


def _reask_prompt_tokens(state: _Attempts) -> int:
    """The next re-ask's prompt: the last prompt as the endpoint counted it, the refused answer and the errors
    (estimated); with no count from the endpoint, every message estimated."""
    if state.prompt_tokens <= 0:
        return sum(_ESTIMATE.estimate(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in state.messages) * 2
    errors = "; ".join(state.errors[:8])
    added = _ESTIMATE.estimate(state.last_reply) + _ESTIMATE.estimate(errors) + 64  # 64: the re-ask's own words
    return state.prompt_tokens + added + 2 * MESSAGE_OVERHEAD_TOKENS


async def _all_or_none(coroutines: list[Any]) -> list[Any]:
    """Run concurrently; the first exception cancels the others and is raised as itself (not as a group)."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _Clock:
    def __init__(self) -> None:
        self._start = self._mark = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(self.timings.get(name, 0.0) + (now - self._mark) * 1000, 3)
        self._mark = now

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": round((time.perf_counter() - self._start) * 1000, 3)}


class SchemaSource(Protocol):
    """What the pipeline needs of the schema registry (``SchemaRegistry``): a reference resolved for a tenant."""

    async def resolve(self, tenant: str, ref: str) -> CompiledSchema: ...


class ResultStore(Protocol):
    """What the pipeline needs of the result cache (``ResultCache``): a stored result's JSON, and a place for one."""

    async def get(self, tenant: str, digest: str) -> str | None: ...

    async def put(self, tenant: str, digest: str, result: ExtractionResult) -> None: ...


def _null_invalid(schema: CompiledSchema, data: dict[str, Any], repairs: list[str]) -> dict[str, Any]:
    """Null each top-level field that strict grounding left invalid (say, a list now under ``minItems``).

    Every top-level field is nullable, so the result is valid again.
    """
    broken = schema.invalid_fields(data)
    repairs.extend(f"/{name}: invalid after strict grounding, set to null" for name in sorted(broken))
    return {key: None if key in broken else value for key, value in data.items()}


class ExtractionService:
    def __init__(
        self,
        registry: SchemaSource,
        model: ModelClient,
        prober: EnforcementProber,
        cache: ResultStore,
        settings: ExtractionSettings,
        results_log: ResultsLog | None = None,
        *,
        tracing: Tracing | None = None,
        metrics: ExtractionMetrics | None = None,
        context_tokens: int | None = None,
        identity: str | None = None,
    ) -> None:
        """``context_tokens``: the model's context window, when the settings know it (else the endpoint is asked);
        ``identity``: what the result cache knows the endpoint by (else its base URL)."""
        self._registry = registry
        self._model = model
        self._prober = prober
        self._cache = cache
        self._settings = settings
        self._results_log = results_log
        self._tracing = tracing or Tracing()
        self._metrics = metrics or ExtractionMetrics()
        self._endpoint = endpoint_label(model.base_url)
        self._identity = identity or model.base_url
        self._planner = PartPlanner(model, settings, context_tokens=context_tokens)

    async def extract(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        *,
        model_gate: ModelGate | None = None,
        report: ExtractionReport | None = None,
        events: EventSink | None = None,
    ) -> ExtractionResult:
        """One extraction; ``report``, if given, is filled with what it did (also when it fails). With ``events``
        the model's answer is streamed and the object so far, each re-ask and each part are reported to it."""
        report = report or ExtractionReport()
        outcome = await self._observed(tenant, schema_ref, text, options, model_gate, report, events)
        return ExtractionResult.model_validate_json(outcome) if isinstance(outcome, str) else outcome

    async def extract_json(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        report: ExtractionReport | None = None,
        *,
        events: EventSink | None = None,
    ) -> str:
        """The same extraction, as JSON. A cache hit is answered from the stored JSON without parsing it."""
        outcome = await self._observed(tenant, schema_ref, text, options, None, report or ExtractionReport(), events)
        return outcome if isinstance(outcome, str) else outcome.model_dump_json()

    async def _observed(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        model_gate: ModelGate | None,
        report: ExtractionReport,
        events: EventSink | None = None,
    ) -> ExtractionResult | str:
        """The pipeline in its span, its outcome counted (a cancelled one is not: it has no outcome)."""
        report.tenant, report.schema = tenant, schema_ref
        report.status, report.reason, report.cached = "", None, False  # a batch item's earlier try is over
        report.parts = 1
        with self._tracing.span("extractor.extract") as span:
            report.trace_id = trace_id(span)
            try:
                return await self._run(tenant, schema_ref, text, options, model_gate, report, events)
            except Exception as exc:
                report.fail(exc)
                raise
            finally:
                self._metrics.result(report)
                if span is not None:
                    span.set_attributes(_span_attributes(report))

    async def _run(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        model_gate: ModelGate | None,
        report: ExtractionReport,
        events: EventSink | None = None,
    ) -> ExtractionResult | str:
        """The pipeline; a cache hit comes back as its JSON (``hit_json``), a fresh result as the model."""
        clock = _Clock()
        if len(text) > self._settings.max_text_chars:
            raise PayloadTooLargeError(
                f"text is {len(text)} characters; the limit is {self._settings.max_text_chars}",
                limit=self._settings.max_text_chars,
            )
        with self._tracing.span("extractor.schema"):
            schema = await self._registry.resolve(tenant, schema_ref)
            model_name = await self._model.name()
        report.resolve(schema.version.ref, model_name)
        resolved = self._resolve_options(options)
        digest = ""  # it hashes the text: made only when the cache is asked
        if options.cache:
            digest = cache_digest(
                schema_hash=schema.version.hash,
                endpoint=self._identity,
                model=model_name,
                prompt_version=PROMPT_VERSION,
                options=resolved.model_dump(),
                text=text,
            )
        clock.lap("schema")
        if options.cache and (stored := await self._lookup(tenant, digest, report)) is not None:
            clock.lap("cache")
            report.status, report.cached = stored_status(stored), True
            return hit_json(stored, clock.total())
        with self._tracing.span("extractor.enforcement"):
            level = await self._prober.level()
        report.enforcement = level.value
        self._metrics.enforcement(self._endpoint, level.value)
        run = _PartRun(schema, level, resolved, model_gate, report, events)
        result, prompt = await self._extract_planned(run, text, model_name, clock, options.require_complete)
        if options.cache and result.complete:
            with self._tracing.span("extractor.cache.write"):
                await self._remember(tenant, digest, prompt, result)
        return result

    async def _extract_planned(
        self, run: _PartRun, text: str, model_name: str, clock: _Clock, require_complete: bool
    ) -> tuple[ExtractionResult, list[Message] | None]:
        """Plan the parts of ``text``, extract them, and return the result with the prompt of a one-part answer.

        An endpoint that refuses a prompt naming a smaller window than the plan's is taken at its word: the planner
        keeps that window, and the text is planned again within it, once."""
        plan = await self._plan(run, text, model_name, clock)
        try:
            return await self._extract_plan(run, plan, text, model_name, clock, require_complete)
        except ContextOverflowError as exc:
            if exc.window is None or exc.window >= plan.budget.window:
                raise
            self._planner.narrow(exc.window)  # a concurrent request may have narrowed it already
        plan = await self._plan(run, text, model_name, clock)
        return await self._extract_plan(run, plan, text, model_name, clock, require_complete)

    async def _plan(self, run: _PartRun, text: str, model_name: str, clock: _Clock) -> Plan:
        with self._tracing.span("extractor.split"):
            plan = await self._planner.plan(run.schema, run.level, text, model_name)
        run.report.parts = len(plan.parts)
        clock.lap("split")
        return plan

    async def _extract_plan(
        self, run: _PartRun, plan: Plan, text: str, model_name: str, clock: _Clock, require_complete: bool
    ) -> tuple[ExtractionResult, list[Message] | None]:
        schema, level, report = run.schema, run.level, run.report
        if len(plan.parts) > 1:
            result = await self._extract_parts(run, plan, model_name, clock, require_complete=require_complete)
            return result, None
        resolved, gate = run.options, run.gate
        attempts = await self._call_until_valid(
            schema, text, level, resolved, clock, gate, report, plan.budget, run.events
        )
        await self._sample(schema, level, resolved, attempts[0], gate, report, plan.budget)
        result = self._finish(schema, text, model_name, level, attempts, resolved, clock, report)
        return result, attempts[0].messages[:2]

    async def _lookup(self, tenant: str, digest: str, report: ExtractionReport) -> str | None:
        with self._tracing.span("extractor.cache") as span:
            stored = await self._cache.get(tenant, digest)
            if span is not None:
                span.set_attribute("extractor.cache.hit", stored is not None)
        self._metrics.cache(report, hit=stored is not None)
        return stored

    async def _remember(self, tenant: str, digest: str, prompt: list[Message] | None, result: ExtractionResult) -> None:
        """Cache the result and keep it for export, best-effort: a paid, valid answer is never lost to a Redis fault.

        A merged result (``prompt`` None) is not kept for export: no one prompt produced it."""
        try:
            if self._results_log is None or prompt is None or not self._results_log.keeps(result):
                await self._cache.put(tenant, digest, result)
            else:  # independent writes: one round trip of waiting
                await asyncio.gather(
                    self._cache.put(tenant, digest, result), self._results_log.append(tenant, prompt, result)
                )
        except RedisError as exc:
            log.warning("result not cached (Redis: %s); answering it anyway", exc)

    def _resolve_options(self, options: ExtractOptions) -> ResolvedOptions:
        return ResolvedOptions(
            grounding=options.grounding or self._settings.grounding,
            max_attempts=options.max_attempts or self._settings.max_attempts,
            temperature=self._settings.temperature if options.temperature is None else options.temperature,
            min_confidence=options.min_confidence,
            samples=options.samples or 1,
        )

    async def _call_until_valid(
        self,
        schema: CompiledSchema,
        text: str,
        level: EnforcementLevel,
        options: ResolvedOptions,
        clock: _Clock,
        gate: ModelGate | None,
        report: ExtractionReport,
        budget: Budget,
        events: EventSink | None = None,
    ) -> tuple[_Attempts, dict[str, Any]]:
        """Call, repair, coerce and validate; re-ask with the errors until valid, out of attempts or over budget.

        A re-ask's prompt carries the refused answer and the errors: its answer gets what the window has left."""
        state = _Attempts(messages=build_messages(schema, text))
        fmt = response_format(level, schema.wire_for(level), schema.strict)
        properties = top_level_properties(schema.version.json_schema)
        while state.count < options.max_attempts and state.usage.total_tokens < self._settings.token_budget:
            max_tokens = budget.reserve if not state.count else budget.answer_room(_reask_prompt_tokens(state))
            if max_tokens < _MIN_ANSWER_TOKENS:
                state.errors = [*state.errors, "no room left in the model's context window to ask again"]
                break
            if state.count:
                self._metrics.reask(report, state.failure)
                if events is not None:
                    attempt_started(events, state.count + 1, state.failure, state.errors)
            on_text = None if events is None else partial_feed(events, properties, state.count + 1)
            async with gate() if gate is not None else contextlib.nullcontext():
                reply = await self._call(state, fmt, options, clock, report, max_tokens, on_text)
            if reply.finish_reason == "length":
                return self._kept(state, salvage_truncated(schema, reply.content), max_tokens)
            data = self._parse_and_check(schema, reply, state, report)
            clock.lap("validate")
            if data is not None:
                return state, data
            state.messages = build_reask(state.messages, reply.content, state.errors)
        if (salvaged := salvage_invalid(schema, state.last_data, state.count)) is not None:
            state.repairs.extend(salvaged.repairs)
            return state, salvaged.data
        raise ExtractionFailedError(
            f"no valid output after {state.count} attempt(s): {'; '.join(state.errors[:3])}",
            **self._failure_details(state, level),
        )

    async def _sample(
        self,
        schema: CompiledSchema,
        level: EnforcementLevel,
        options: ResolvedOptions,
        state: _Attempts,
        gate: ModelGate | None,
        report: ExtractionReport,
        budget: Budget,
    ) -> None:
        """``options.samples - 1`` further answers to the first prompt, sampled (each its own seed), kept in
        ``state.samples`` when valid: how often they agree is part of each value's confidence."""
        fmt = response_format(level, schema.wire_for(level), schema.strict)
        temperature = max(options.temperature, _SAMPLE_TEMPERATURE)
        for n in range(1, options.samples):
            async with gate() if gate is not None else contextlib.nullcontext():
                reply = await self._model.complete(
                    state.messages[:2],
                    fmt,
                    max_tokens=budget.reserve,
                    temperature=temperature,
                    seed=(self._settings.seed or 0) + n,
                )
            self._metrics.tokens(report, reply.prompt_tokens, reply.completion_tokens)
            state.usage = state.usage.add(reply.prompt_tokens, reply.completion_tokens)
            state.count += 1
            sample = _Attempts(messages=state.messages)
            if reply.finish_reason != "length" and (data := self._parse_and_check(schema, reply, sample, report)):
                state.samples.append(data)
        report.attempts = state.count

    async def _call(
        self,
        state: _Attempts,
        fmt: dict[str, Any] | None,
        options: ResolvedOptions,
        clock: _Clock,
        report: ExtractionReport,
        max_tokens: int,
        on_text: Callable[[str], None] | None = None,
    ) -> ModelReply:
        started = time.perf_counter()
        try:
            reply = await self._model.complete(
                state.messages,
                fmt,
                max_tokens=max_tokens,
                temperature=options.temperature,
                seed=self._settings.seed,
                on_text=on_text,
                logprobs=self._settings.logprobs,
            )
        except ExtractorError as exc:
            self._metrics.model_call(report.model, exc.code, time.perf_counter() - started)
            raise
        self._metrics.model_call(report.model, "ok", time.perf_counter() - started)
        self._metrics.tokens(report, reply.prompt_tokens, reply.completion_tokens)
        clock.lap("model")
        state.count += 1
        report.attempts = state.count
        state.usage = state.usage.add(reply.prompt_tokens, reply.completion_tokens)
        state.last_reply = reply.content
        state.prompt_tokens = reply.prompt_tokens
        state.reply = reply
        return reply

    def _kept(self, state: _Attempts, salvaged: Salvaged | None, max_tokens: int) -> tuple[_Attempts, dict[str, Any]]:
        """What an answer cut at the token limit had closed; a truncation is never asked again unchanged."""
        if salvaged is None:
            raise TruncatedOutputError(
                f"the model stopped at its token limit ({max_tokens}) before finishing the JSON",
                **self._failure_details(state, None),
            )
        state.truncated = True
        state.repairs.extend([f"the answer was cut off at the token limit ({max_tokens})", *salvaged.repairs])
        return state, salvaged.data

    def _parse_and_check(
        self, schema: CompiledSchema, reply: ModelReply, state: _Attempts, report: ExtractionReport
    ) -> dict[str, Any] | None:
        """The valid, coerced data, or None with ``state.errors`` saying why (repairs are kept either way)."""
        with self._tracing.span("extractor.repair"):
            try:
                repaired = parse_json(reply.content)
            except RepairError as exc:
                state.errors, state.failure = [f"not JSON: {exc}"], "not_json"
                return None
            data, coercions = coerce(repaired.value, schema.document)
            data, blanks = null_blanks(data)
        self._metrics.repairs(report, "parse", len(repaired.repairs))
        self._metrics.repairs(report, "coerce", len(coercions) + len(blanks))
        state.repairs.extend([*repaired.repairs, *coercions, *blanks])
        state.last_data = data
        with self._tracing.span("extractor.validate") as span:
            state.errors, state.failure = schema.errors(data), "invalid"
            if span is not None:
                span.set_attribute("extractor.valid", not state.errors)
        return data if not state.errors and isinstance(data, dict) else None

    @staticmethod
    def _failure_details(state: _Attempts, level: EnforcementLevel | None) -> dict[str, Any]:
        details: dict[str, Any] = {
            "attempts": state.count,
            "output": state.last_reply,
            "errors": state.errors,
            "repairs": state.repairs,
            "usage": state.usage.model_dump(),
        }
        if level is not None:
            details["enforcement"] = level.value
        return details

    def _ground(
        self,
        schema: CompiledSchema,
        text: str,
        data: dict[str, Any],
        grounding: GroundingMode,
        repairs: list[str],
        report: ExtractionReport,
    ) -> tuple[dict[str, Any], dict[str, FieldGrounding] | None]:
        """Each value's span in ``text``; strict grounding nulls the values not found (logged in ``repairs``)."""
        with self._tracing.span("extractor.grounding", {"extractor.grounding": grounding}):
            fields = None if grounding == GroundingMode.OFF else ground(data, text)
            if fields is not None and grounding == GroundingMode.STRICT:
                data, removed = apply_strict(data, fields)
                repairs.extend(removed)
                self._metrics.repairs(report, "grounding", len(removed))
                before = len(repairs)
                data = _null_invalid(schema, data, repairs)
                self._metrics.repairs(report, "invalid_after_grounding", len(repairs) - before)
                fields = ground(data, text)
        return data, fields

    def _finish(
        self,
        schema: CompiledSchema,
        text: str,
        model_name: str,
        level: EnforcementLevel,
        outcome: tuple[_Attempts, dict[str, Any]],
        options: ResolvedOptions,
        clock: _Clock,
        report: ExtractionReport,
    ) -> ExtractionResult:
        state, data = outcome
        data, fields = self._ground(schema, text, data, options.grounding, state.repairs, report)
        fields = answer_confidences(state.reply, data, fields, state.samples)
        decision = decide(
            schema.version.json_schema, data, fields, state.repairs, min_confidence=options.min_confidence
        )
        fields, report.reason = decision.fields, decision.reason
        status = ResultStatus.OK if report.reason is None else ResultStatus.EMPTY
        report.status = status
        clock.lap("grounding")
        empty = status == ResultStatus.EMPTY
        return ExtractionResult(
            status=status,
            data=None if empty else decision.data,
            schema_ref=schema.version.ref,
            model=model_name,
            enforcement=level,
            attempts=state.count,
            repairs=state.repairs,
            fields={} if empty or fields is None else fields,
            usage=state.usage,
            timings_ms=clock.total(),
            empty_reason=report.reason,
            truncated=state.truncated,
        )

    async def _extract_parts(
        self, run: _PartRun, plan: Plan, model_name: str, clock: _Clock, *, require_complete: bool
    ) -> ExtractionResult:
        """Every part through the single-call steps, ``part_concurrency`` at a time, then one merged result.

        A part that fails its extraction (no valid output, truncation) is listed in ``failed_parts``; any other
        error (upstream, cancellation) ends the whole extraction. All parts failed: the first part's error."""
        permits = asyncio.Semaphore(self._settings.part_concurrency)
        progress = PartProgress(run.events, run.schema, len(plan.parts))
        outcomes: list[_PartOutcome] = await _all_or_none(
            [progress.track(self._extract_part(run, part, plan.budget, permits)) for part in plan.parts]
        )
        clock.lap("parts")
        failures = [outcome for outcome in outcomes if outcome.error is not None]
        failed: list[FailedPart] = [failed_part(o.part, o.error) for o in failures if o.error is not None]
        run.report.attempts = sum(outcome.attempts for outcome in outcomes)
        if failures and (len(failures) == len(outcomes) or require_complete):
            first = failures[0].error
            if len(failures) == len(outcomes) and first is not None:
                raise first
            raise IncompleteExtractionError(
                f"{len(failures)} of the document's {len(outcomes)} parts failed (the first at characters "
                f"{failed[0].start}-{failed[0].end}: {failed[0].problem['detail']}); without require_complete "
                "the others' merged result is answered with complete: false",
                failed_parts=[f.model_dump() for f in failed],
            )
        merged = merged_outcome(run.schema, [o.result for o in outcomes if o.result is not None])
        repairs = [f"part {o.part.index}: {repair}" for o in outcomes for repair in o.repairs] + merged.repairs
        decision = decide(
            run.schema.version.json_schema,
            merged.data,
            merged.fields,
            repairs,
            min_confidence=run.options.min_confidence,
        )
        merged.data, merged.fields, run.report.reason = decision.data, decision.fields, decision.reason
        status = ResultStatus.OK if run.report.reason is None else ResultStatus.EMPTY
        run.report.status = status
        for outcome in outcomes:
            for step, ms in outcome.timings.items():
                clock.timings[step] = round(clock.timings.get(step, 0.0) + ms, 3)
        clock.lap("merge")
        empty = status == ResultStatus.EMPTY
        usage = Usage()
        for outcome in outcomes:
            usage = usage.add(outcome.usage.prompt_tokens, outcome.usage.completion_tokens)
        return ExtractionResult(
            status=status,
            data=None if empty else merged.data,
            schema_ref=run.schema.version.ref,
            model=model_name,
            enforcement=run.level,
            attempts=run.report.attempts,
            repairs=repairs,
            fields={} if empty or merged.fields is None else merged.fields,
            usage=usage,
            timings_ms=clock.total(),
            complete=not failed,
            parts=len(outcomes),
            failed_parts=failed,
            conflicts={} if empty else merged.conflicts,
            empty_reason=run.report.reason,
        )

    async def _extract_part(
        self, run: _PartRun, part: Part, budget: Budget, permits: asyncio.Semaphore
    ) -> _PartOutcome:
        """One part: call until valid, then ground in the part's own text (the merge maps spans to the original)."""
        async with permits:
            clock = _Clock()
            try:
                state, data = await self._call_until_valid(
                    run.schema, part.text, run.level, run.options, clock, run.gate, run.report, budget
                )
            except ExtractionFailedError as exc:
                usage = Usage.model_validate(exc.extra.get("usage") or {})
                attempts = int(exc.extra.get("attempts") or 0)
                return _PartOutcome(part, clock.timings, attempts=attempts, usage=usage, error=exc)
            data, fields = self._ground(run.schema, part.text, data, run.options.grounding, state.repairs, run.report)
            clock.lap("grounding")
            return _PartOutcome(
                part,
                clock.timings,
                attempts=state.count,
                usage=state.usage,
                repairs=state.repairs,
                result=PartResult(part=part, data=data, fields=fields),
            )


def _span_attributes(report: ExtractionReport) -> dict[str, str | int | bool]:
    """extractor's own attributes on the extraction's span."""
    attributes: dict[str, str | int | bool] = {
        "extractor.tenant": report.tenant,
        "extractor.schema": report.schema,
        "extractor.status": report.status or "cancelled",
        "extractor.cached": report.cached,
        "extractor.attempts": report.attempts,
        "gen_ai.usage.input_tokens": report.input_tokens,
        "gen_ai.usage.output_tokens": report.output_tokens,
    }
    reason = "error.type" if report.status == "failed" else "extractor.empty_reason"
    optional = {"extractor.enforcement": report.enforcement, reason: report.reason, "extractor.model": report.model}
    attributes.update({key: value for key, value in optional.items() if value})
    if report.parts > 1:
        attributes["extractor.parts"] = report.parts
    return attributes
