"""The one place that knows the order of an extraction: schema, cache, prompt, model, repair, validate, ground, empty.

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
from typing import Any

from redis.exceptions import RedisError

from extractor.errors import ExtractionFailedError, ExtractorError, PayloadTooLargeError, TruncatedOutputError
from extractor.extraction.cache import ResultCache, cache_digest, hit_json, stored_status
from extractor.extraction.coerce import coerce
from extractor.extraction.empty import empty_reason
from extractor.extraction.enforcement import EnforcementLevel, EnforcementProber, response_format
from extractor.extraction.grounding import apply_strict, ground
from extractor.extraction.model import ModelClient, ModelReply
from extractor.extraction.prompt import PROMPT_VERSION, Message, build_messages, build_reask
from extractor.extraction.repair import RepairError, parse_json
from extractor.extraction.result import ExtractionResult, ExtractOptions, FieldInfo, Usage
from extractor.extraction.results_log import ResultsLog
from extractor.registry.compiled import CompiledSchema
from extractor.registry.service import SchemaRegistry
from extractor.settings import ExtractionSettings
from extractor.telemetry.metrics import ExtractionMetrics, endpoint_label
from extractor.telemetry.report import ExtractionReport
from extractor.telemetry.tracing import Tracing, trace_id

__all__ = ["ExtractionService", "ModelGate"]

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
        registry: SchemaRegistry,
        model: ModelClient,
        prober: EnforcementProber,
        cache: ResultCache,
        settings: ExtractionSettings,
        results_log: ResultsLog | None = None,
        *,
        tracing: Tracing | None = None,
        metrics: ExtractionMetrics | None = None,
    ) -> None:
        self._registry = registry
        self._model = model
        self._prober = prober
        self._cache = cache
        self._settings = settings
        self._results_log = results_log
        self._tracing = tracing or Tracing()
        self._metrics = metrics or ExtractionMetrics()
        self._endpoint = endpoint_label(model.base_url)

    async def extract(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        *,
        model_gate: ModelGate | None = None,
        report: ExtractionReport | None = None,
    ) -> ExtractionResult:
        """One extraction; ``report``, if given, is filled with what it did (also when it fails)."""
        outcome = await self._observed(tenant, schema_ref, text, options, model_gate, report or ExtractionReport())
        return ExtractionResult.model_validate_json(outcome) if isinstance(outcome, str) else outcome

    async def extract_json(
        self, tenant: str, schema_ref: str, text: str, options: ExtractOptions, report: ExtractionReport | None = None
    ) -> str:
        """The same extraction, as JSON. A cache hit is answered from the stored JSON without parsing it."""
        outcome = await self._observed(tenant, schema_ref, text, options, None, report or ExtractionReport())
        return outcome if isinstance(outcome, str) else outcome.model_dump_json()

    async def _observed(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        model_gate: ModelGate | None,
        report: ExtractionReport,
    ) -> ExtractionResult | str:
        """The pipeline in its span, its outcome counted (a cancelled one is not: it has no outcome)."""
        report.tenant, report.schema = tenant, schema_ref
        report.status, report.reason, report.cached = "", None, False  # a batch item's earlier try is over
        with self._tracing.span("extractor.extract") as span:
            report.trace_id = trace_id(span)
            try:
                return await self._run(tenant, schema_ref, text, options, model_gate, report)
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
        digest = cache_digest(
            schema_hash=schema.version.hash,
            model=model_name,
            prompt_version=PROMPT_VERSION,
            options=resolved,
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
        attempts = await self._call_until_valid(schema, text, level, resolved, clock, model_gate, report)
        result = self._finish(schema, text, model_name, level, attempts, resolved["grounding"], clock, report)
        if options.cache:
            with self._tracing.span("extractor.cache.write"):
                await self._remember(tenant, digest, attempts[0].messages[:2], result)
        return result

    async def _lookup(self, tenant: str, digest: str, report: ExtractionReport) -> str | None:
        with self._tracing.span("extractor.cache") as span:
            stored = await self._cache.get(tenant, digest)
            if span is not None:
                span.set_attribute("extractor.cache.hit", stored is not None)
        self._metrics.cache(report, hit=stored is not None)
        return stored

    async def _remember(self, tenant: str, digest: str, prompt: list[Message], result: ExtractionResult) -> None:
        """Cache the result and keep it for export, best-effort: a paid, valid answer is never lost to a Redis fault."""
        try:
            if self._results_log is None or not self._results_log.keeps(result):
                await self._cache.put(tenant, digest, result)
            else:  # independent writes: one round trip of waiting
                await asyncio.gather(
                    self._cache.put(tenant, digest, result), self._results_log.append(tenant, prompt, result)
                )
        except RedisError as exc:
            log.warning("result not cached (Redis: %s); answering it anyway", exc)

    def _resolve_options(self, options: ExtractOptions) -> dict[str, Any]:
        return {
            "grounding": options.grounding or self._settings.grounding,
            "max_attempts": options.max_attempts or self._settings.max_attempts,
            "temperature": self._settings.temperature if options.temperature is None else options.temperature,
        }

    async def _call_until_valid(
        self,
        schema: CompiledSchema,
        text: str,
        level: EnforcementLevel,
        options: dict[str, Any],
        clock: _Clock,
        gate: ModelGate | None,
        report: ExtractionReport,
    ) -> tuple[_Attempts, dict[str, Any]]:
        """Call, repair, coerce and validate; re-ask with the errors until valid, out of attempts or over budget."""
        state = _Attempts(messages=build_messages(schema, text))
        fmt = response_format(level, schema.wire_schema, schema.strict)
        while state.count < options["max_attempts"] and state.usage.total_tokens < self._settings.token_budget:
            if state.count:
                self._metrics.reask(report, state.failure)
            async with gate() if gate is not None else contextlib.nullcontext():
                reply = await self._call(state, fmt, options, clock, report)
            data = self._parse_and_check(schema, reply, state, report)
            clock.lap("validate")
            if data is not None:
                return state, data
            state.messages = build_reask(state.messages, reply.content, state.errors)
        raise ExtractionFailedError(
            f"no valid output after {state.count} attempt(s): {'; '.join(state.errors[:3])}",
            **self._failure_details(state, level),
        )

    async def _call(
        self,
        state: _Attempts,
        fmt: dict[str, Any] | None,
        options: dict[str, Any],
        clock: _Clock,
        report: ExtractionReport,
    ) -> ModelReply:
        started = time.perf_counter()
        try:
            reply = await self._model.complete(
                state.messages,
                fmt,
                max_tokens=self._settings.max_tokens,
                temperature=options["temperature"],
                seed=self._settings.seed,
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
        if reply.finish_reason == "length":
            raise TruncatedOutputError(
                f"the model stopped at its token limit ({self._settings.max_tokens}) before finishing the JSON",
                **self._failure_details(state, None),
            )
        return reply

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
            data, coercions = coerce(repaired.value, schema.version.json_schema)
        self._metrics.repairs(report, "parse", len(repaired.repairs))
        self._metrics.repairs(report, "coerce", len(coercions))
        state.repairs.extend([*repaired.repairs, *coercions])
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

    def _finish(
        self,
        schema: CompiledSchema,
        text: str,
        model_name: str,
        level: EnforcementLevel,
        outcome: tuple[_Attempts, dict[str, Any]],
        grounding: str,
        clock: _Clock,
        report: ExtractionReport,
    ) -> ExtractionResult:
        state, data = outcome
        with self._tracing.span("extractor.grounding", {"extractor.grounding": grounding}):
            fields = None if grounding == "off" else ground(data, text)
            if fields is not None and grounding == "strict":
                data, removed = apply_strict(data, fields)
                state.repairs.extend(removed)
                self._metrics.repairs(report, "grounding", len(removed))
                before = len(state.repairs)
                data = _null_invalid(schema, data, state.repairs)
                self._metrics.repairs(report, "invalid_after_grounding", len(state.repairs) - before)
                fields = ground(data, text)
            report.reason = empty_reason(data, fields)
        empty = report.reason is not None
        report.status = "empty" if empty else "ok"
        clock.lap("grounding")
        return ExtractionResult(
            status="empty" if empty else "ok",
            data=None if empty else data,
            schema_ref=schema.version.ref,
            model=model_name,
            enforcement=level.value,
            attempts=state.count,
            repairs=state.repairs,
            fields={} if empty or fields is None else {p: FieldInfo(**f.to_json()) for p, f in fields.items()},
            usage=state.usage,
            timings_ms=clock.total(),
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
    return attributes
