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

import httpx

from extractor.errors import ExtractorError, InvalidInputError
from extractor.evaluation.stats import Comparison, FieldScore, Report, compare_scores, score_document, summarize
from extractor.extraction.result import ExtractOptions
from extractor.registry.schema import SchemaDefinition
from extractor.services import Services

__all__ = [
    "Backend",
    "EvalCase",
    "EvalRun",
    "HttpBackend",
    "InProcessBackend",
    "Outcome",
    "fit_gold",
    "load_cases",
    "run_eval",
    "score_run",
]

Status = Literal["ok", "empty", "failed"]


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


class Backend(Protocol):
    """Where extractions run: over HTTP or in this process."""

    async def properties(self, schema_ref: str) -> dict[str, Any]:
        """The ``properties`` of the schema's JSON Schema (the fields the model is asked for)."""
        ...

    async def register(self, name: str, definition: SchemaDefinition) -> str:
        """Register ``definition`` as the next version of ``name``; return its ``name@version``."""
        ...

    async def extract(self, schema_ref: str, text: str, options: Mapping[str, Any]) -> tuple[Status, Any, str | None]:
        """``(status, data, error)`` for one document."""
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
    """A running extractor service; ``client`` has its ``base_url`` and credentials set."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ExtractorError(f"cannot reach extractor at {self._client.base_url}: {exc}") from exc

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            raise ExtractorError(f"{response.request.method} {response.request.url.path}: {response.text[:500]}")

    async def properties(self, schema_ref: str) -> dict[str, Any]:
        name, _, version = schema_ref.partition("@")
        response = await self._send("GET", f"/v1/schemas/{name}" + (f"/versions/{version}" if version else ""))
        self._raise_for(response)
        return dict(response.json()["json_schema"].get("properties", {}))

    async def register(self, name: str, definition: SchemaDefinition) -> str:
        body = definition.model_dump(exclude_none=True)
        response = await self._send("PUT", f"/v1/schemas/{name}", json=body)
        self._raise_for(response)
        answer = response.json()
        return f"{answer['name']}@{answer['version']}"

    async def extract(self, schema_ref: str, text: str, options: Mapping[str, Any]) -> tuple[Status, Any, str | None]:
        body = {"schema": schema_ref, "text": text, "options": dict(options)}
        response = await self._send("POST", "/v1/extract", json=body)
        if response.status_code >= 400:
            return "failed", None, f"{response.status_code}: {response.text[:300]}"
        answer = response.json()
        return answer["status"], answer["data"], None


class InProcessBackend:
    """The pipeline in this process, through :class:`Services` (no HTTP in between)."""

    def __init__(self, services: Services, tenant: str) -> None:
        self._services = services
        self._tenant = tenant

    async def properties(self, schema_ref: str) -> dict[str, Any]:
        compiled = await self._services.registry.resolve(self._tenant, schema_ref)
        return dict(compiled.version.json_schema.get("properties", {}))

    async def register(self, name: str, definition: SchemaDefinition) -> str:
        version, _ = await self._services.registry.register(self._tenant, name, definition)
        return f"{version.name}@{version.version}"

    async def extract(self, schema_ref: str, text: str, options: Mapping[str, Any]) -> tuple[Status, Any, str | None]:
        try:
            result = await self._services.extraction.extract(
                self._tenant, schema_ref, text, ExtractOptions.model_validate(dict(options))
            )
        except ExtractorError as exc:
            return "failed", None, f"{exc.code}: {exc.detail}"
        return result.status, result.data, None


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
        return {"counts": self.counts, "seconds": round(self.seconds, 3), "median_latency_ms": middle, "errors": errors}


async def _one(
    backend: Backend, schema_ref: str, case: EvalCase, options: Mapping[str, Any], gate: asyncio.Semaphore
) -> Outcome:
    async with gate:
        start = time.perf_counter()
        status, data, error = await backend.extract(schema_ref, case.text, options)
        return Outcome(case.id, status, data, (time.perf_counter() - start) * 1000, error)


async def run_eval(
    backend: Backend, schema_ref: str, cases: Sequence[EvalCase], options: Mapping[str, Any], concurrency: int
) -> EvalRun:
    """Extract every case with at most ``concurrency`` in flight; outcomes come back in case order."""
    gate = asyncio.Semaphore(max(1, concurrency))
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(_one(backend, schema_ref, case, options, gate) for case in cases))
    counts = {status: sum(1 for o in outcomes if o.status == status) for status in ("ok", "empty", "failed")}
    return EvalRun(list(outcomes), time.perf_counter() - start, counts)


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
