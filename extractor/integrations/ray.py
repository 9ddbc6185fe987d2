"""Ray Data: extractor's pipeline over a ``Dataset``, a batch of rows at a time (``Dataset.map_batches``).

Two callable classes, each made once per Ray actor and called with a batch of columns (``id``, ``text``, and
``index`` if the rows carry their position: Ray Data has no global row number). Each returns the columns ``id``,
``index``, ``status`` and ``result``: the line ``GET /v1/batches/{id}/results`` would give for that document,
as JSON text, so that downstream code reads one format whichever way the documents went.

- :class:`ExtractBatches` runs extractor's own ``ExtractionService`` inside the actor, against an OpenAI-compatible
  endpoint (vLLM, ``extractor model serve``, OpenAI): enforcement, repair and re-ask, validation, grounding and the
  empty rule, exactly as the service does. There is no shared Redis: the schema is one compiled version held in
  memory (read from a file, or fetched once from a running service's registry), results are not cached (each row is
  one document, extracted once), and the endpoint's enforcement level is probed once per actor and kept in memory.
- :class:`ExtractViaService` sends each document to a running extractor service through its Python client: the
  service's cache, tenancy, limits and metrics apply, and the actors need no model access of their own.

Nothing here imports Ray: the classes are what ``map_batches`` is given (install ``extractor[ray]`` for Ray Data).
``examples/ray_extract.py`` reads JSONL or Parquet and writes Parquet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis

from extractor.client import AsyncClient, ExtractorAPIError, ExtractorClientError
from extractor.errors import ExtractorError, InternalError, SchemaNotFoundError
from extractor.extraction.enforcement import EnforcementProber
from extractor.extraction.model import ModelClient
from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.extraction.service import ExtractionService
from extractor.registry.compiled import CompiledSchema, compile_schema
from extractor.registry.schema import SchemaDefinition, SchemaVersion, canonical_hash, parse_ref
from extractor.settings import Settings

__all__ = ["COLUMNS", "ExtractBatches", "ExtractViaService", "load_schema", "result_line"]

COLUMNS = ("id", "index", "status", "result")
"""The columns both classes return."""

_TENANT = "ray"
"""Only a label here (no Redis, no other tenant): the pipeline's metrics and log lines carry it."""

Batch = Mapping[str, Sequence[Any]]
Columns = dict[str, list[Any]]


def load_schema(
    ref: str, *, schema_file: str | Path | None = None, registry_url: str | None = None, api_key: str | None = None
) -> SchemaVersion:
    """The schema version to extract with: ``schema_file`` (a bare JSON Schema, or ``{json_schema, description,
    instructions, examples}`` as ``PUT /v1/schemas`` takes) named ``ref``, or ``ref`` (``name`` or ``name@N``) as
    the registry of the service at ``registry_url`` has it."""
    if schema_file is not None:
        raw = json.loads(Path(schema_file).read_text())
        definition = SchemaDefinition.model_validate(raw if "json_schema" in raw else {"json_schema": raw})
        name = ref.partition("@")[0]
        created = datetime.now(UTC).isoformat(timespec="seconds")
        return SchemaVersion(
            name=name, version=1, hash=canonical_hash(definition), created_at=created, **definition.model_dump()
        )
    if registry_url is None:
        raise ValueError("give schema_file or registry_url")
    return asyncio.run(_fetch_schema(ref, registry_url, api_key))


async def _fetch_schema(ref: str, url: str, api_key: str | None) -> SchemaVersion:
    parsed = parse_ref(ref)
    if parsed is None:
        raise SchemaNotFoundError(f"{ref!r} is not a schema reference (`name` or `name@3`)", schema=ref)
    name, number = parsed
    async with AsyncClient(url, api_key) as client:
        if number is None:
            return SchemaVersion.model_validate((await client.get_schema(name)).model_dump())
        return await client.get_schema_version(name, number)


def result_line(doc_id: str, index: int | None, result: ExtractionResult) -> str:
    """A result line as the batch worker writes it: the result's own JSON with the document's id and index first."""
    body = result.model_dump_json(by_alias=True)
    return f'{{"id":{json.dumps(doc_id)},"index":{json.dumps(index)},{body[1:]}'


def _failed_line(doc_id: str, index: int | None, problem: Mapping[str, Any]) -> str:
    return json.dumps({"id": doc_id, "index": index, "status": "failed", "error": dict(problem)})


class _OneSchema:
    """The registry's stand-in: the one compiled version this actor extracts with (``name`` or ``name@N``)."""

    def __init__(self, compiled: CompiledSchema) -> None:
        self._compiled = compiled

    async def resolve(self, tenant: str, ref: str) -> CompiledSchema:
        version = self._compiled.version
        if ref not in (version.name, version.ref):
            raise SchemaNotFoundError(f"this extractor holds {version.ref}, not {ref!r}", schema=ref)
        return self._compiled


class _NoCache:
    """The result cache's stand-in: nothing is kept (a row is extracted once)."""

    async def get(self, tenant: str, digest: str) -> None:
        return None

    async def put(self, tenant: str, digest: str, result: ExtractionResult) -> None:
        return None


class _Memory:
    """The two Redis commands the enforcement prober uses, on a dict: the probed level lives as long as the actor."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self._values.get(key)

    async def set(self, key: str, value: str, ex: int | None = None) -> bool:
        self._values[key] = value
        return True


def _rows(batch: Batch, id_column: str, text_column: str, index_column: str) -> list[tuple[str, str, int | None]]:
    ids = [str(value) for value in batch[id_column]]
    texts = [str(value) for value in batch[text_column]]
    indexes: list[int | None] = (
        [int(value) for value in batch[index_column]] if index_column in batch else [None] * len(ids)
    )
    return list(zip(ids, texts, indexes, strict=True))


def _columns(rows: list[tuple[str, int | None, str, str]]) -> Columns:
    return {name: [row[n] for row in rows] for n, name in enumerate(COLUMNS)}


class _LoopOwner:
    """An actor's own event loop: Ray calls ``__call__`` synchronously, and the clients live on one loop. A batch's
    rows (``_columns``: id, text, index) run through ``_one`` together."""

    _columns: tuple[str, str, str]

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()

    def __call__(self, batch: Batch) -> Columns:
        return _columns(self._run(self._all(_rows(batch, *self._columns))))

    async def _all(self, rows: list[tuple[str, str, int | None]]) -> list[tuple[str, int | None, str, str]]:
        return await asyncio.gather(*(self._one(*row) for row in rows))

    async def _one(self, doc_id: str, text: str, index: int | None) -> tuple[str, int | None, str, str]:
        raise NotImplementedError

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(self._aclose())
            self._loop.close()

    async def _aclose(self) -> None:
        return None


class ExtractBatches(_LoopOwner):
    """For ``Dataset.map_batches``: extractor's pipeline, in this process, on each batch of documents.

    ``concurrency`` model calls at once per actor. ``settings`` are extractor's own (``EXTRACTOR_*`` variables, or
    ``Settings(...)``): the model endpoint, its key and name, ``model_enforcement`` to skip the probe, the
    extraction section (attempts, token budget, grounding). ``options`` are a request's (``{"grounding": ...}``).
    """

    def __init__(
        self,
        schema: str,
        *,
        schema_file: str | None = None,
        registry_url: str | None = None,
        api_key: str | None = None,
        settings: Settings | Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        concurrency: int = 32,
        id_column: str = "id",
        text_column: str = "text",
        index_column: str = "index",
    ) -> None:
        super().__init__()
        config = settings if isinstance(settings, Settings) else Settings(**dict(settings or {}))
        if config.model_base_url is None:
            raise ValueError("no model endpoint: set EXTRACTOR_MODEL_BASE_URL or pass settings={'model_base_url': ...}")
        compiled = compile_schema(
            load_schema(schema, schema_file=schema_file, registry_url=registry_url, api_key=api_key)
        )
        self._schema = compiled.version.ref
        self._model = ModelClient(
            config.model_base_url,
            config.model_api_key.get_secret_value(),
            model=config.model_name,
            timeout_s=config.model_timeout_s,
            max_retries=config.model_max_retries,
            concurrency=concurrency,
        )
        # The seam: ExtractionService takes any schema source and result store (its protocols); the prober's
        # store is Redis, here a dict with the two commands it uses (see the module's doc).
        self._service = ExtractionService(
            _OneSchema(compiled),
            self._model,
            EnforcementProber(cast("Redis", _Memory()), self._model, config.model_enforcement),
            _NoCache(),
            config.extraction,
            tracing=None,
            context_tokens=config.model_context_tokens,
        )
        self._options = ExtractOptions.model_validate({**(options or {}), "cache": False})
        self._permits = asyncio.Semaphore(concurrency)
        self._columns = (id_column, text_column, index_column)

    async def _one(self, doc_id: str, text: str, index: int | None) -> tuple[str, int | None, str, str]:
        try:
            result = await self._service.extract(_TENANT, self._schema, text, self._options, model_gate=self._gate)
        except ExtractorError as exc:
            return doc_id, index, "failed", _failed_line(doc_id, index, exc.problem().document())
        except Exception:
            return doc_id, index, "failed", _failed_line(doc_id, index, InternalError().problem().document())
        return doc_id, index, result.status, result_line(doc_id, index, result)

    @contextlib.asynccontextmanager
    async def _gate(self) -> AsyncIterator[None]:
        async with self._permits:
            yield

    async def _aclose(self) -> None:
        await self._model.close()


class ExtractViaService(_LoopOwner):
    """For ``Dataset.map_batches``: each document of a batch sent to a running extractor service (``POST
    /v1/extract`` through :class:`extractor.client.AsyncClient`), ``concurrency`` at once per actor."""

    def __init__(
        self,
        schema: str,
        *,
        url: str,
        api_key: str | None = None,
        options: Mapping[str, Any] | None = None,
        concurrency: int = 32,
        timeout_s: float = 120.0,
        id_column: str = "id",
        text_column: str = "text",
        index_column: str = "index",
    ) -> None:
        super().__init__()
        self._schema = schema
        self._client = AsyncClient(url, api_key, timeout=timeout_s)
        self._options = ExtractOptions.model_validate(dict(options or {}))
        self._permits = asyncio.Semaphore(concurrency)
        self._columns = (id_column, text_column, index_column)

    async def _one(self, doc_id: str, text: str, index: int | None) -> tuple[str, int | None, str, str]:
        async with self._permits:
            try:
                result = await self._client.extract(self._schema, text, options=self._options)
            except ExtractorAPIError as exc:
                return doc_id, index, "failed", _failed_line(doc_id, index, exc.problem.model_dump())
            except ExtractorClientError as exc:
                problem = {"type": "service-unreachable", "title": "Service unreachable", "detail": str(exc)}
                return doc_id, index, "failed", _failed_line(doc_id, index, problem)
        return doc_id, index, result.status, result_line(doc_id, index, result)

    async def _aclose(self) -> None:
        await self._client.aclose()
