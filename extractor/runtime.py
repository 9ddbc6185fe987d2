"""The composition root: the one place that builds the long-lived objects of a process and closes them.

Every entry point opens one ``Runtime``: the HTTP app (``app.py``), ``extractor worker`` and ``eval --in-process``.
Nothing else constructs a Redis client, the model client, the registry, the cache, the batch store or the queue;
the parts receive the narrow pieces they use, and nothing below this module imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from redis.asyncio import Redis
from saq import Worker
from saq.types import Context

from extractor.errors import InvalidInputError
from extractor.extraction.breaker import CircuitBreaker
from extractor.extraction.cache import ResultCache
from extractor.extraction.enforcement import EnforcementProber
from extractor.extraction.model import ModelClient
from extractor.extraction.results_log import ResultsLog
from extractor.extraction.service import ExtractionService
from extractor.jobs.queue import BatchQueue, open_queue
from extractor.jobs.service import BatchService
from extractor.jobs.state import BatchStore
from extractor.jobs.worker import build_worker
from extractor.local.embedded import MODEL, REDIS
from extractor.local.supervisor import Supervisor
from extractor.ratelimit import TenantLimiter
from extractor.readiness import ReadinessChecks, no_problem
from extractor.redis_connect import connect
from extractor.registry.service import SchemaRegistry, read_definitions
from extractor.settings import Settings
from extractor.telemetry.metrics import ExtractionMetrics
from extractor.telemetry.tracing import Tracing

__all__ = ["Runtime", "bundled_schema_dir", "open_runtime"]


def bundled_schema_dir(settings: Settings) -> Path:
    """The bundled schemas: the top-level ``schemas/`` folder, which the wheel carries as ``extractor/bundled_schemas``;
    in a source checkout (an editable install) the folder itself."""
    if settings.registry.bundled_dir is not None:
        return settings.registry.bundled_dir
    packaged = Path(str(files("extractor") / "bundled_schemas"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class Runtime:
    """The long-lived objects of one process. ``batches`` is there when the runtime was opened with the queue."""

    settings: Settings
    redis: Redis
    model: ModelClient
    registry: SchemaRegistry
    extraction: ExtractionService
    results_log: ResultsLog
    readiness: ReadinessChecks
    tracing: Tracing
    batch_store: BatchStore
    queue: BatchQueue | None = None
    batches: BatchService | None = None
    limiter: TenantLimiter | None = None
    """Per-tenant rate and in-flight limits (``api/limits.py``)."""

    def worker(self, *, worker_id: str | None = None) -> Worker[Context]:
        """A batch worker over this runtime's queue (signals are the caller's to handle)."""
        if self.queue is None:
            raise RuntimeError("open_runtime(..., with_queue=True) first")
        return build_worker(
            self.extraction,
            self.batch_store,
            self.queue,
            self.settings.jobs,
            tracing=self.tracing,
            log_documents=self.settings.log_documents,
            worker_id=worker_id,
        )


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    supervisor: Supervisor | None = None,
    tracing: Tracing | None = None,
    with_queue: bool = False,
) -> AsyncIterator[Runtime]:
    """Build the runtime from settings and close it on exit. ``supervisor`` knows the children that ``extractor
    serve`` started, if any; ``tracing`` (off if not given) is flushed at exit; ``with_queue`` also connects the
    batch queue (the API and workers; not an evaluation)."""
    if settings.redis_url is None:
        raise InvalidInputError("no Redis: set EXTRACTOR_REDIS_URL or start with `extractor serve`")
    if settings.model_base_url is None:
        raise InvalidInputError("no model endpoint: set EXTRACTOR_MODEL_BASE_URL or install extractor[local]")
    tracing = tracing or Tracing()
    redis = connect(
        settings.redis_url, socket_timeout=settings.redis_timeout_s, socket_connect_timeout=settings.redis_timeout_s
    )
    model = ModelClient(
        settings.model_base_url,
        settings.model_api_key.get_secret_value(),
        model=settings.model_name,
        timeout_s=settings.model_timeout_s,
        idle_timeout_s=settings.model_idle_timeout_s,
        max_retries=settings.model_max_retries,
        unavailable=_problem_of(supervisor, MODEL),
        tracing=tracing,
        breaker=CircuitBreaker(settings.limits.breaker_failures, settings.limits.breaker_cooldown_s),
        concurrency=settings.limits.upstream_concurrency,
    )
    registry = SchemaRegistry(redis, settings.registry, read_definitions(bundled_schema_dir(settings)))
    results_log = ResultsLog(redis, settings.cache.keep_results)
    extraction = ExtractionService(
        registry,
        model,
        EnforcementProber(redis, model, settings.model_enforcement),
        ResultCache(redis, settings.cache),
        settings.extraction,
        results_log,
        tracing=tracing,
        metrics=ExtractionMetrics(settings.metrics),
        context_tokens=settings.model_context_tokens,
        identity=settings.model_identity,
    )
    store = BatchStore(redis, settings.jobs.ttl_s)
    readiness = ReadinessChecks(redis, model, _problem_of(supervisor, REDIS))
    runtime = Runtime(settings, redis, model, registry, extraction, results_log, readiness, tracing, store)
    runtime = dataclasses.replace(runtime, limiter=TenantLimiter(redis, settings.limits.request_deadline_s + 30))
    try:
        if not with_queue:
            yield runtime
            return
        queue = BatchQueue(open_queue(settings.redis_url), settings.jobs)
        await queue.saq.connect()
        try:
            batches = BatchService(store, queue, registry, settings.jobs, tracing)
            yield dataclasses.replace(runtime, queue=queue, batches=batches)
        finally:
            await queue.close()
    finally:
        await model.close()
        await redis.aclose()
        tracing.shutdown()  # the last spans go out


def _problem_of(supervisor: Supervisor | None, name: str) -> Callable[[], str | None]:
    if supervisor is None:
        return no_problem
    return lambda: supervisor.problem(name)
