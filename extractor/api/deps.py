"""Dependencies every controller shares: the services container and the caller's tenant."""

from __future__ import annotations

import hmac

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency

from extractor.errors import AuthError
from extractor.services import Services
from extractor.settings import hash_api_key

__all__ = ["DEFAULT_TENANT", "provide_services", "provide_tenant"]

DEFAULT_TENANT = "default"


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


def provide_tenant(services: NamedDependency[Services], request: Request[object, object, State]) -> str:
    """The tenant of the presented API key (``Authorization: Bearer`` or ``X-API-Key``); single-tenant without keys.

    It takes ``services`` so that Litestar resolves the two one after the other: dependencies of one level are
    resolved in an anyio task group, which costs more than both functions (measured on the cache-hit path).
    """
    table = services.settings.api_keys
    if not table:
        return DEFAULT_TENANT
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    if not key:
        raise AuthError("this service needs an API key: send `Authorization: Bearer <key>`")
    presented = hash_api_key(key)
    for stored, tenant in table.items():
        if hmac.compare_digest(stored, presented):
            return tenant
    raise AuthError("unknown API key")
