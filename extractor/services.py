"""The long-lived clients and services, built once per process (API server or worker) and closed at exit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from extractor.errors import InvalidInputError
from extractor.extraction.cache import ResultCache
from extractor.extraction.enforcement import EnforcementLevel, EnforcementProber
from extractor.extraction.model import ModelClient
from extractor.extraction.results_log import ResultsLog
from extractor.extraction.service import ExtractionService
from extractor.local.embedded import MODEL, REDIS
from extractor.local.supervisor import Supervisor
from extractor.registry.service import SchemaRegistry, read_definitions
from extractor.settings import Settings
from extractor.telemetry.metrics import ExtractionMetrics
from extractor.telemetry.tracing import Tracing

__all__ = ["Services", "build_services", "bundled_schema_dir", "reconnecting"]


def bundled_schema_dir(settings: Settings) -> Path:
    """The bundled schemas: the top-level ``schemas/`` folder, which the wheel carries as ``extractor/bundled_schemas``;
    in a source checkout (an editable install) the folder itself."""
    if settings.registry.bundled_dir is not None:
        return settings.registry.bundled_dir
    packaged = Path(str(files("extractor") / "bundled_schemas"))
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "schemas"


@dataclass
class Services:
    settings: Settings
    redis: Redis
    model: ModelClient
    registry: SchemaRegistry
    extraction: ExtractionService
    results_log: ResultsLog
    model_problem: Callable[[], str | None]
    """Why the bundled model server cannot answer right now (a sentence), or None."""
    store_problem: Callable[[], str | None]
    """Why the bundled Redis cannot answer right now (a sentence), or None."""
    tracing: Tracing = field(default_factory=Tracing)

    async def aclose(self) -> None:
        await self.model.close()
        await self.redis.aclose()
        self.tracing.shutdown()  # the last spans go out


def reconnecting() -> dict[str, Any]:
    """Client options: a pooled connection that Redis closed (a restart, a failover) is reopened and the command
    sent again, rather than the request failing; redis-py's asyncio client retries nothing unless told to."""
    return {"retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), "retry_on_error": [RedisConnectionError]}


def build_services(
    settings: Settings,
    *,
    supervisor: Supervisor | None = None,
    tracing: Tracing | None = None,
) -> Services:
    """Wire the clients from settings; ``supervisor`` knows the children ``extractor serve`` started, if any.

    ``tracing`` (off if not given) is closed with the services: they flush its last spans."""
    if settings.redis_url is None:
        raise InvalidInputError("no Redis: set EXTRACTOR_REDIS_URL or start with `extractor serve`")
    if settings.model_base_url is None:
        raise InvalidInputError("no model endpoint: set EXTRACTOR_MODEL_BASE_URL or install extractor[local]")
    tracing = tracing or Tracing()
    redis: Redis = Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=10,
        # The writes are idempotent (SET, Lua scripts guarded by the item's status, WATCHed registrations), except
        # the export log's XADD, which a retry can at worst append twice.
        **reconnecting(),
    )
    model_problem, store_problem = (_problem_of(supervisor, MODEL), _problem_of(supervisor, REDIS))
    model = ModelClient(
        settings.model_base_url,
        settings.model_api_key.get_secret_value(),
        model=settings.model_name,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
        unavailable=model_problem,
        tracing=tracing,
    )
    forced = EnforcementLevel(settings.model_enforcement) if settings.model_enforcement else None
    registry = SchemaRegistry(redis, settings.registry, read_definitions(bundled_schema_dir(settings)))
    results_log = ResultsLog(redis, settings.cache.keep_results)
    extraction = ExtractionService(
        registry,
        model,
        EnforcementProber(redis, model, forced),
        ResultCache(redis, settings.cache),
        settings.extraction,
        results_log,
        tracing=tracing,
        metrics=ExtractionMetrics(settings.metrics),
    )
    return Services(settings, redis, model, registry, extraction, results_log, model_problem, store_problem, tracing)


def _problem_of(supervisor: Supervisor | None, name: str) -> Callable[[], str | None]:
    if supervisor is None:
        return lambda: None
    return lambda: supervisor.problem(name)
