"""The HTTP application: routes, lifespan (the runtime), errors mapped to problem documents once, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.pydantic import PydanticPlugin
from redis.exceptions import RedisError

from extractor import errors
from extractor.api.assets import static_routers
from extractor.api.batches import BatchController, BatchDocument, BatchRequest
from extractor.api.contract import tighten_openapi
from extractor.api.deps import DEPENDENCIES
from extractor.api.docs import docs_render_plugins
from extractor.api.extract import ExtractController, ExtractRequest
from extractor.api.health import HealthController
from extractor.api.limits import BoundedRequest, enforce_limits
from extractor.api.metrics import metrics, prometheus_config
from extractor.api.playground import playground
from extractor.api.problems import HTTP_CODES, as_domain_error, error_response, problem_response
from extractor.api.schemas import SchemaController
from extractor.api.shutdown import answer_cut_requests
from extractor.api.tracing import tracing_hooks
from extractor.extraction.result import ExtractOptions
from extractor.jobs.lifecycle import running_beside
from extractor.local.supervisor import Supervisor
from extractor.persistence import inspect_store
from extractor.registry.schema import SchemaDefinition
from extractor.registry.service import SchemaRegistry
from extractor.runtime import Runtime, open_runtime
from extractor.settings import Settings
from extractor.telemetry.logs import litestar_logging
from extractor.telemetry.tracing import Tracing

__all__ = ["create_app"]

log = logging.getLogger("extractor")


def _error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Domain errors, Redis failing and bugs alike: mapped and logged once (``as_domain_error``)."""
    runtime: Runtime = request.app.state.runtime
    where = f"{request.method} {request.url.path}"
    return error_response(as_domain_error(exc, where, runtime.readiness.store_detail))


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    extra = {"errors": exc.extra} if exc.extra else {}
    code = HTTP_CODES.get(exc.status_code, "http-error")
    title = code.replace("-", " ").capitalize()
    problem = errors.Problem(type=code, title=title, status=exc.status_code, detail=exc.detail, **extra)
    return problem_response(problem, exc.headers)


async def _register_bundled(registry: SchemaRegistry) -> None:
    """Register the bundled schemas; while Redis is down, keep trying (the service starts and says not ready)."""
    while True:
        try:
            loaded = await registry.register_bundled()
        except RedisError as exc:
            log.warning("Redis not reachable (%s); bundled schemas will be registered when it is", exc)
            await asyncio.sleep(2)
        else:
            log.info("bundled schemas: %s", ", ".join(v.ref for v in loaded))
            return


def create_app(
    settings: Settings | None = None, *, supervisor: Supervisor | None = None, tracing: Tracing | None = None
) -> Litestar:
    """Build the app. ``supervisor`` watches the children that ``extractor serve`` started, if any. ``tracing``:
    by default as the ``OTEL_*`` variables say (off unless they name an OTLP endpoint)."""
    settings = settings or Settings()
    tracing = tracing or Tracing.from_env()
    tracing_plugins, before_request = tracing_hooks(tracing)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_runtime(settings, supervisor=supervisor, tracing=tracing, with_queue=True) as runtime:
            app.state.runtime = runtime
            registering = asyncio.create_task(_register_bundled(runtime.registry))
            inspecting = asyncio.create_task(inspect_store(runtime.redis))  # persistence, where the data begins
            try:
                await asyncio.wait({registering}, timeout=5)
                if not settings.api_keys:
                    log.warning("no EXTRACTOR_API_KEYS set: single-tenant mode, every caller shares one namespace")
                async with running_beside(runtime.worker() if settings.jobs.run_in_serve else None):
                    yield
            finally:
                registering.cancel()
                inspecting.cancel()

    prometheus = prometheus_config()
    app = Litestar(
        route_handlers=[
            HealthController,
            SchemaController,
            ExtractController,
            BatchController,
            metrics,
            playground,
            *static_routers(),
        ],
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        middleware=[answer_cut_requests, prometheus.middleware, enforce_limits],
        request_class=BoundedRequest,
        plugins=[PydanticPlugin(prefer_alias=True), *tracing_plugins],
        before_request=before_request,
        exception_handlers={
            errors.ExtractorError: _error,
            HTTPException: _http_error,
            RedisError: _error,
            Exception: _error,
        },
        openapi_config=OpenAPIConfig(
            title="extractor",
            version="1.0.0",
            description="Structured-output extraction: register JSON Schemas, post documents, get grounded JSON.",
            path="/schema",
            render_plugins=docs_render_plugins(),
        ),
        request_max_body_size=settings.max_body_bytes,
        logging_config=litestar_logging(settings),
        debug=False,
    )
    tighten_openapi(app, [ExtractRequest, ExtractOptions, SchemaDefinition, BatchRequest, BatchDocument])
    return app
