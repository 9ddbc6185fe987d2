"""``/v1/schemas``: register, read and retire named, versioned schemas."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from extractor.api.problems import problems
from extractor.registry.schema import NAME_PATTERN, SchemaDefinition, SchemaVersion
from extractor.registry.service import SchemaRegistry, SchemaSummary

__all__ = ["SchemaController"]

SchemaName = Annotated[
    str, Parameter(pattern=NAME_PATTERN, description="1-64 letters, digits, `_`, `.`, `-`; a letter or digit first.")
]
"""A schema name in a path: refused (400) on every route unless it has the form names take."""


class SchemaController(Controller):
    path = "/v1/schemas"
    tags = ["schemas"]

    @put(
        "/{name:str}",
        summary="Register a schema version",
        operation_id="register_schema",
        status_code=HTTP_201_CREATED,
        responses=problems(400, 409, 413, 422),
    )
    async def register(
        self,
        name: SchemaName,
        data: JSONBody[SchemaDefinition],
        registry: NamedDependency[SchemaRegistry],
        tenant: NamedDependency[str],
    ) -> Response[SchemaVersion]:
        """201 with the new version; 200 with the latest when the content equals it (no new version)."""
        version, created = await registry.register(tenant, name, data)
        return Response(version, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/", summary="List schemas (latest version of each)", operation_id="list_schemas", responses=problems())
    async def list_schemas(
        self, registry: NamedDependency[SchemaRegistry], tenant: NamedDependency[str]
    ) -> list[SchemaSummary]:
        return await registry.list_latest(tenant)

    @get("/{name:str}", summary="Latest version of a schema", operation_id="get_schema", responses=problems(404))
    async def latest(
        self, name: SchemaName, registry: NamedDependency[SchemaRegistry], tenant: NamedDependency[str]
    ) -> SchemaSummary:
        return await registry.latest(tenant, name)

    @get(
        "/{name:str}/versions/{version:int}",
        summary="One version of a schema",
        operation_id="get_schema_version",
        responses=problems(404),
    )
    async def version(
        self,
        name: SchemaName,
        version: FromPath[int],
        registry: NamedDependency[SchemaRegistry],
        tenant: NamedDependency[str],
    ) -> SchemaVersion:
        return await registry.version(tenant, name, version)

    @delete(
        "/{name:str}",
        summary="Retire a schema (versions stay readable)",
        operation_id="retire_schema",
        status_code=HTTP_200_OK,
        responses=problems(404),
    )
    async def retire(
        self, name: SchemaName, registry: NamedDependency[SchemaRegistry], tenant: NamedDependency[str]
    ) -> SchemaSummary:
        return await registry.retire(tenant, name)
