"""The dependencies of the routes: the caller's tenant and the narrow part of the runtime each route uses.

Each part is resolved after the tenant, and the tenant after the settings, so that Litestar resolves a route's
dependencies one at a time: it resolves two of one level in an anyio task group, which costs more than the
functions themselves (measured on the cache-hit path, ``bench/cache.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from extractor.errors import AuthError
from extractor.extraction.service import ExtractionService
from extractor.jobs.service import BatchService
from extractor.readiness import ReadinessChecks
from extractor.registry.service import SchemaRegistry
from extractor.runtime import Runtime
from extractor.settings import Settings, hash_api_key
from extractor.vocabulary import DEFAULT_TENANT

__all__ = ["DEPENDENCIES", "tenant_of"]


def _runtime(request: Request[object, object, State]) -> Runtime:
    """The runtime, reached through the request: a ``state`` parameter would have Litestar copy the app's state
    into a new ``State`` for each dependency that names it, on every request (``bench/request_cpu.py``)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def provide_settings(request: Request[object, object, State]) -> Settings:
    return _runtime(request).settings


def provide_tenant(settings: NamedDependency[Settings], request: Request[object, object, State]) -> str:
    """The tenant of the presented API key (``Authorization: Bearer`` or ``X-API-Key``); single-tenant without keys."""
    return tenant_of(settings, request.headers)


def tenant_of(settings: Settings, headers: Mapping[str, str]) -> str:
    """``provide_tenant`` for any caller that holds the headers (the limits middleware); ``AuthError`` if unknown."""
    table = settings.api_keys
    if not table:
        return DEFAULT_TENANT
    header = headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else headers.get("x-api-key", "")
    if not key:
        raise AuthError("this service needs an API key: send `Authorization: Bearer <key>`")
    presented = hash_api_key(key)
    for stored, tenant in table.items():
        if hmac.compare_digest(stored, presented):
            return tenant
    raise AuthError("unknown API key")


def provide_registry(request: Request[object, object, State], tenant: NamedDependency[str]) -> SchemaRegistry:
    return _runtime(request).registry


def provide_extraction(request: Request[object, object, State], tenant: NamedDependency[str]) -> ExtractionService:
    return _runtime(request).extraction


def provide_batches(request: Request[object, object, State], tenant: NamedDependency[str]) -> BatchService:
    batches = _runtime(request).batches
    if batches is None:
        raise RuntimeError("the app opens its runtime with the batch queue")
    return batches


def provide_readiness(request: Request[object, object, State]) -> ReadinessChecks:
    return _runtime(request).readiness


_PROVIDERS: dict[str, Callable[..., object]] = {
    "settings": provide_settings,
    "tenant": provide_tenant,
    "registry": provide_registry,
    "extraction": provide_extraction,
    "batches": provide_batches,
    "readiness": provide_readiness,
}
DEPENDENCIES = {name: Provide(provider, sync_to_thread=False) for name, provider in _PROVIDERS.items()}
