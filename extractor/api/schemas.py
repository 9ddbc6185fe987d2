"""``/v1/schemas``: register, read and retire named, versioned schemas."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from extractor.api.problems import problems
from extractor.registry.schema import SchemaDefinition, SchemaVersion
from extractor.registry.service import SchemaSummary
from extractor.services import Services

__all__ = ["SchemaController"]


class SchemaController(Controller):
    path = "/v1/schemas"
    tags = ["schemas"]

    @put(
        "/{name:str}",
        summary="Register a schema version",
        status_code=HTTP_201_CREATED,
        responses=problems(400, 409, 413, 422),
    )
    async def register(
        self,
        name: FromPath[str],
        data: JSONBody[SchemaDefinition],
        services: NamedDependency[Services],
        tenant: NamedDependency[str],
    ) -> Response[SchemaVersion]:
        """201 with the new version; 200 with the latest when the content equals it (no new version)."""
        version, created = await services.registry.register(tenant, name, data)
        return Response(version, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/", summary="List schemas (latest version of each)", responses=problems())
    async def list_schemas(
        self, services: NamedDependency[Services], tenant: NamedDependency[str]
    ) -> list[SchemaSummary]:
        return await services.registry.list_latest(tenant)

    @get("/{name:str}", summary="Latest version of a schema", responses=problems(404))
    async def latest(
        self, name: FromPath[str], services: NamedDependency[Services], tenant: NamedDependency[str]
    ) -> SchemaSummary:
        return await services.registry.latest(tenant, name)

    @get("/{name:str}/versions/{version:int}", summary="One version of a schema", responses=problems(404))
    async def version(
        self,
        name: FromPath[str],
        version: FromPath[int],
        services: NamedDependency[Services],
        tenant: NamedDependency[str],
    ) -> SchemaVersion:
        return await services.registry.version(tenant, name, version)

    @delete(
        "/{name:str}",
        summary="Retire a schema (versions stay readable)",
        status_code=HTTP_200_OK,
        responses=problems(404),
    )
    async def retire(
        self, name: FromPath[str], services: NamedDependency[Services], tenant: NamedDependency[str]
    ) -> SchemaSummary:
        return await services.registry.retire(tenant, name)
