"""Run an evaluation: send every case through a backend (a running service or the pipeline in-process) and score it.

A backend answers one document with its data (``ok``), ``None`` (``empty``) or a failure. A failure of one
document (no valid output, a text too long for the model, an upstream error) is scored as all-null and counted;
an unknown schema or an unreachable service stops the run before any document is sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from extractor.client import AsyncClient, ExtractorAPIError
from extractor.errors import ExtractorError, InvalidInputError
from extractor.evaluation.calibration import Cell, field_confidence
from extractor.evaluation.emptiness import has_values
from extractor.evaluation.normalize import values_match
from extractor.evaluation.stats import Comparison, FieldScore, Report, compare_scores, score_document, summarize
from extractor.extraction.result import ExtractOptions
from extractor.extraction.service import ExtractionService
from extractor.registry.schema import SchemaDefinition
from extractor.registry.service import SchemaRegistry
from extractor.vocabulary import ResultStatus

__all__ = [
    "Answer",
    "Backend",
    "EvalCase",
    "EvalRun",
    "HttpBackend",
    "InProcessBackend",
    "Outcome",
    "calibration_cells",
    "fit_gold",
    "load_cases",
    "relevance",
    "run_eval",
    "score_run",
]

Status = Literal["ok", "empty", "failed"]
_STATUS: dict[ResultStatus, Status] = {ResultStatus.OK: "ok", ResultStatus.EMPTY: "empty"}


@dataclass(frozen=True, slots=True)
class EvalCase:
    """One labelled document: ``expected`` maps field names to gold values (``None``: the document has none)."""

    id: str
    text: str
    expected: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the backend answered for one case."""

    id: str
    status: Status
    data: Mapping[str, Any] | None
    latency_ms: float
    error: str | None = None
    confidence: Mapping[str, float] = field(default_factory=dict)
    """Per JSON Pointer, the ``confidence`` the service gave each value (empty when it gives none)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a backend answered for one document."""

    status: Status
    data: Any = None
    error: str | None = None
    confidence: Mapping[str, float] = field(default_factory=dict)


class Backend(Protocol):
    """Where extractions run: over HTTP or in this process."""

    async def properties(self, schema_ref: str) -> dict[str, Any]:
        """The ``properties`` of the schema's JSON Schema (the fields the model is asked for)."""
        ...

    async def register(self, name: str, definition: SchemaDefinition) -> str:
        """Register ``definition`` as the next version of ``name``; return its ``name@version``."""
        ...

    async def extract(self, schema_ref: str, text: str, options: Mapping[str, Any]) -> Answer:
        """The answer for one document."""
        ...


def _pick(value: Any, path: str | None) -> Any:
    for part in filter(None, (path or "").split(".")):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def load_cases(path: Path, *, expected_path: str | None = None, limit: int | None = None) -> list[EvalCase]:
    """Read ``{"id", "text", "expected"}`` lines; ``expected_path`` (``slots``, ``a.b``) selects a dict inside."""
    cases: list[EvalCase] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if limit is not None and len(cases) >= limit:
                break
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InvalidInputError(f"{path}:{number}: each line needs a string `text`")
            expected = _pick(record.get("expected"), expected_path)
            if expected is not None and not isinstance(expected, Mapping):
                raise InvalidInputError(f"{path}:{number}: `expected` (at {expected_path!r}) is not an object")
            cases.append(EvalCase(str(record.get("id", number)), record["text"], expected))
    return cases


def _declared_types(schema: Any) -> set[str]:
    declared = schema.get("type") if isinstance(schema, Mapping) else None
    if isinstance(declared, str):
        return {declared}
    return set(declared) if isinstance(declared, list) else set()


def fit_gold(expected: Mapping[str, Any] | None, properties: Mapping[str, Any]) -> dict[str, Any] | None:
    """Gold values shaped like the schema: a one-value list for a field that is a string, not an array, is unwrapped.

    SNIPS lists every slot's values (``{"playlist": ["Flow"]}``) while an extraction schema asks for one string; a
    slot with two values stays a list and cannot be matched by a string field, which is the truth of it.
    """
    if expected is None:
        return None
    fitted = dict(expected)
    for name, value in expected.items():
        types = _declared_types(properties.get(name))
        if isinstance(value, list) and len(value) == 1 and "string" in types and "array" not in types:
            fitted[name] = value[0]
    return fitted


class HttpBackend:
    """A running extractor service, through the client. A problem answered for one document is that document's
    failure; an unknown schema or an unreachable service raises and stops the run."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def properties(self, schema_ref: str) -> dict[str, Any]:
        name, _, version = schema_ref.partition("@")
        client = self._client
        schema = await (client.get_schema_version(name, int(version)) if version else client.get_schema(name))
        return dict(schema.json_schema.get("properties", {}))

    async def register(self, name: str, definition: SchemaDefinition) -> str:
        return (await self._client.register_schema(name, definition)).ref

    async def extract(self, schema_ref: str, text: str, options: Mapping[str, Any]) -> Answer:
        try:
            result = await self._client.extract(schema_ref, text, options=options)
        except ExtractorAPIError as exc:
            return Answer("failed", error=f"{exc.status} {exc.type}: {exc.detail}")
        return Answer(_STATUS[result.status], result.data, confidence=_confidences(result.fields))


class InProcessBackend:
    """The pipeline in this process (no HTTP in between)."""

    def __init__(self, registry: SchemaRegistry, extraction: ExtractionService, tenant: str) -> None:
        self._registry = registry
        self._extraction = extraction
        self._tenant = tenant

    async def properties(self, schema_ref: str) -> dict[str, Any]:
        compiled = await self._registry.resolve(self._tenant, schema_ref)
        return dict(compiled.version.json_schema.get("properties", {}))

    async def register(self, name: str, definition: SchemaDefinition) -> str:
        version, _ = await self._registry.register(self._tenant, name, definition)
        return f"{version.name}@{version.version}"

    async def extract(self, schema_ref: str, text: str, options: Mapping[str, Any]) -> Answer:
        try:
            result = await self._extraction.extract(
                self._tenant, schema_ref, text, ExtractOptions.model_validate(dict(options))
            )
        except ExtractorError as exc:
            return Answer("failed", error=f"{exc.code}: {exc.detail}")
        return Answer(_STATUS[result.status], result.data, confidence=_confidences(result.fields))


def _confidences(fields: Mapping[str, Any]) -> dict[str, float]:
    """The ``confidence`` of each field that has one (a service from before confidences gives none)."""
    found = {pointer: getattr(grounding, "confidence", None) for pointer, grounding in fields.items()}
    return {pointer: float(value) for pointer, value in found.items() if value is not None}


@dataclass(frozen=True, slots=True)
class EvalRun:
    """Every outcome of one configuration, in case order, with its wall time."""

    outcomes: list[Outcome]
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Counts by status, wall time and per-document latency percentiles."""
        latencies = sorted(o.latency_ms for o in self.outcomes)
        middle = round(latencies[len(latencies) // 2], 3) if latencies else None
        errors = [f"{o.id}: {o.error}" for o in self.outcomes if o.error][:5]
        return {
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "median_latency_ms": middle,
            "errors": errors,
            "outcomes": [outcome_json(o) for o in self.outcomes],
        }

    def of(self, ids: Sequence[str]) -> EvalRun | None:
        """The outcomes of ``ids``, in that order (a saved run scored on a subset of its documents); None when one
        of them is not in this run. Its time is the sum of their latencies: exact for a run one at a time."""
        by_id = {outcome.id: outcome for outcome in self.outcomes}
        if not all(each in by_id for each in ids):
            return None
        outcomes = [by_id[each] for each in ids]
        return EvalRun(outcomes, sum(o.latency_ms for o in outcomes) / 1000, _counts(outcomes))

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> EvalRun:
        """A run read back from :meth:`to_json` (``extractor eval --baseline``): its outcomes, counts and time."""
        outcomes = [outcome_from_json(o) for o in document.get("outcomes") or []]
        return cls(outcomes, float(document.get("seconds") or 0.0), dict(document.get("counts") or {}))


def outcome_from_json(o: Mapping[str, Any]) -> Outcome:
    """One outcome as ``outcome_json`` wrote it."""
    return Outcome(
        str(o["id"]),
        o["status"],
        o.get("data"),
        float(o.get("latency_ms") or 0.0),
        o.get("error"),
        {k: float(v) for k, v in (o.get("confidence") or {}).items()},
    )


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "id": outcome.id,
        "status": outcome.status,
        "data": outcome.data,
        "latency_ms": round(outcome.latency_ms, 3),
        "error": outcome.error,
        "confidence": dict(outcome.confidence),
    }


class Progress(Protocol):
    """Where a run keeps its outcomes as they come (``extractor eval --resume``), and the ones it already has."""

    def done(self, case_id: str) -> Outcome | None: ...

    def record(self, outcome: Outcome) -> None: ...


async def _one(
    backend: Backend,
    schema_ref: str,
    case: EvalCase,
    options: Mapping[str, Any],
    gate: asyncio.Semaphore,
    progress: Progress | None,
) -> Outcome:
    if progress is not None and (kept := progress.done(case.id)) is not None:
        return kept
    async with gate:
        start = time.perf_counter()
        answer = await backend.extract(schema_ref, case.text, options)
        latency = (time.perf_counter() - start) * 1000
        outcome = Outcome(case.id, answer.status, answer.data, latency, answer.error, answer.confidence)
    if progress is not None:
        progress.record(outcome)
    return outcome


async def run_eval(
    backend: Backend,
    schema_ref: str,
    cases: Sequence[EvalCase],
    options: Mapping[str, Any],
    concurrency: int,
    progress: Progress | None = None,
) -> EvalRun:
    """Extract every case with at most ``concurrency`` in flight; outcomes come back in case order. With
    ``progress``, a case it already holds is not run again, and each new outcome is handed to it at once."""
    gate = asyncio.Semaphore(max(1, concurrency))
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(_one(backend, schema_ref, case, options, gate, progress) for case in cases))
    return EvalRun(list(outcomes), time.perf_counter() - start, _counts(outcomes))


def _counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return {status: sum(1 for o in outcomes if o.status == status) for status in ("ok", "empty", "failed")}


def _scores(
    cases: Sequence[EvalCase], run: EvalRun, fields: Sequence[str], properties: Mapping[str, Any]
) -> dict[str, list[FieldScore]]:
    # Ids may repeat in a user's file; the position keeps documents apart.
    return {
        f"{i}:{case.id}": score_document(outcome.data, fit_gold(case.expected, properties), fields)
        for i, (case, outcome) in enumerate(zip(cases, run.outcomes, strict=True))
    }


def score_run(
    cases: Sequence[EvalCase],
    run: EvalRun,
    fields: Sequence[str],
    properties: Mapping[str, Any],
    baseline: EvalRun | None = None,
) -> tuple[Report, Comparison | None]:
    """The report of ``run``; with ``baseline``, also the paired differences ``run - baseline``."""
    scores = _scores(cases, run, fields, properties)
    if baseline is None:
        return summarize(scores), None
    return summarize(scores), compare_scores(_scores(cases, baseline, fields, properties), scores)


def relevance(cases: Sequence[EvalCase], fields: Sequence[str], properties: Mapping[str, Any]) -> list[bool]:
    """Per case, whether its gold holds any value among ``fields`` (False: the right answer is ``empty``)."""
    return [has_values(fit_gold(case.expected, properties), fields) for case in cases]


def calibration_cells(
    cases: Sequence[EvalCase], run: EvalRun, fields: Sequence[str], properties: Mapping[str, Any]
) -> list[Cell]:
    """One cell per predicted field that carries a confidence: was it right?"""
    cells: list[Cell] = []
    for i, (case, outcome) in enumerate(zip(cases, run.outcomes, strict=True)):
        gold = fit_gold(case.expected, properties) or {}
        for name in fields:
            confidence = field_confidence(outcome.confidence, name)
            value = (outcome.data or {}).get(name)
            if confidence is not None and value is not None:
                cells.append(Cell(f"{i}:{case.id}", confidence, values_match(value, gold.get(name))))
    return cells
