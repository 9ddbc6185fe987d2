"""The HTTP application: routes, lifespan (clients), the one table that maps domain errors to status codes, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusController
from litestar.plugins.pydantic import PydanticPlugin
from redis.exceptions import RedisError

from extractor import errors
from extractor.api.assets import static_routers
from extractor.api.batches import BatchController
from extractor.api.deps import provide_services, provide_tenant
from extractor.api.docs import docs_render_plugins
from extractor.api.extract import ExtractController
from extractor.api.health import HealthController
from extractor.api.metrics import prometheus_config
from extractor.api.playground import playground
from extractor.api.schemas import SchemaController
from extractor.api.shutdown import answer_cut_requests
from extractor.api.tracing import tracing_hooks
from extractor.jobs.runtime import open_batches
from extractor.local.supervisor import Supervisor
from extractor.services import Services, build_services
from extractor.settings import Settings
from extractor.telemetry.logs import litestar_logging
from extractor.telemetry.tracing import Tracing

__all__ = ["PROBLEM_STATUS", "create_app", "problem_response"]

log = logging.getLogger("extractor")

PROBLEM_STATUS: dict[type[errors.ExtractorError], int] = {
    errors.InvalidInputError: 400,
    errors.InvalidSchemaError: 422,
    errors.DuplicateDocumentIdError: 422,
    errors.PayloadTooLargeError: 413,
    errors.IdempotencyMismatchError: 422,
    errors.AuthError: 401,
    errors.ConflictError: 409,
    errors.NotFoundError: 404,
    errors.ExtractionFailedError: 422,
    errors.UpstreamError: 502,
    errors.UpstreamUnavailableError: 502,
    errors.UpstreamRateLimitedError: 503,
    errors.ModelUnavailableError: 503,
    errors.UpstreamTimeoutError: 504,
    errors.StoreUnavailableError: 503,
    errors.ExtractorError: 500,
}
_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
}


def status_for(exc: errors.ExtractorError) -> int:
    """The status of the nearest class in ``PROBLEM_STATUS`` along the exception's MRO."""
    return next(PROBLEM_STATUS[cls] for cls in type(exc).__mro__ if cls in PROBLEM_STATUS)


def problem_response(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body = {"type": code, "title": title, "status": status, "detail": detail, **extra}
    return Response(body, status_code=status, media_type="application/problem+json", headers=headers)


def _domain_error(request: Request[Any, Any, Any], exc: errors.ExtractorError) -> Response[dict[str, Any]]:
    status = status_for(exc)
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if status >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, status, exc.detail)
    return problem_response(status, exc.code, exc.title, exc.detail, headers or None, **exc.extra)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    extra = {"errors": exc.extra} if exc.extra else {}
    code = _HTTP_CODES.get(exc.status_code, "http-error")
    return problem_response(
        exc.status_code, code, code.replace("-", " ").capitalize(), exc.detail, exc.headers, **extra
    )


def _redis_error(request: Request[Any, Any, Any], exc: RedisError) -> Response[dict[str, Any]]:
    log.warning("%s %s: Redis did not answer: %s", request.method, request.url.path, exc)
    services: Services = request.app.state.services
    detail = services.store_problem() or "Redis did not answer; retry in a few seconds"
    return _domain_error(request, errors.StoreUnavailableError(detail, retry_after=2.0))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("bug: unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal-error", "Internal error", "an unexpected error occurred; it is logged")


async def _register_bundled(services: Services) -> None:
    """Register the bundled schemas; while Redis is down, keep trying (the service starts and says not ready)."""
    while True:
        try:
            loaded = await services.registry.register_bundled()
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
        services = build_services(settings, supervisor=supervisor, tracing=tracing)
        app.state.services = services
        registering = asyncio.create_task(_register_bundled(services))
        try:
            await asyncio.wait({registering}, timeout=5)
            if not settings.api_keys:
                log.warning("no EXTRACTOR_API_KEYS set: single-tenant mode, every caller shares one namespace")
            async with open_batches(services, with_worker=settings.jobs.run_in_serve) as batches:
                app.state.batches = batches
                yield
        finally:
            registering.cancel()
            await services.aclose()

    prometheus = prometheus_config()
    return Litestar(
        route_handlers=[
            HealthController,
            SchemaController,
            ExtractController,
            BatchController,
            PrometheusController,
            playground,
            *static_routers(),
        ],
        dependencies={
            "services": Provide(provide_services, sync_to_thread=False),
            "tenant": Provide(provide_tenant, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=[answer_cut_requests, prometheus.middleware],
        plugins=[PydanticPlugin(prefer_alias=True), *tracing_plugins],
        before_request=before_request,
        exception_handlers={
            errors.ExtractorError: _domain_error,
            HTTPException: _http_error,
            RedisError: _redis_error,
            Exception: _unexpected,
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
