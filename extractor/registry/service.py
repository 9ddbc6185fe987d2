"""Named, versioned schemas in Redis: validate on write, immutable versions, compiled validators kept in memory.

A tenant sees its own schemas and, beneath them, the bundled ones (``keys.SHARED_TENANT``): a tenant's schema
of the same name shadows the bundled one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import WatchError

from extractor import keys
from extractor.errors import InvalidInputError, SchemaNotFoundError
from extractor.registry.checks import check_definition
from extractor.registry.compiled import CompiledSchema, compile_schema
from extractor.registry.schema import SchemaDefinition, SchemaVersion, canonical_hash, parse_ref
from extractor.settings import RegistrySettings

__all__ = ["SchemaRegistry", "SchemaSummary", "read_definitions"]

_COMPILED_CACHE_SIZE = 512


def read_definitions(folder: Path) -> dict[str, SchemaDefinition]:
    """Every ``*.json`` in ``folder`` as a SchemaDefinition, named by its file stem."""
    return {path.stem: SchemaDefinition.model_validate_json(path.read_text()) for path in folder.glob("*.json")}


class SchemaSummary(SchemaVersion):
    """A schema's latest version plus whether it is retired and whose namespace holds it."""

    retired: bool = False
    bundled: bool = False


class SchemaRegistry:
    def __init__(self, redis: Redis, limits: RegistrySettings) -> None:
        self._redis = redis
        self._limits = limits
        self._compiled: dict[str, CompiledSchema] = {}

    async def register(self, tenant: str, name: str, definition: SchemaDefinition) -> tuple[SchemaVersion, bool]:
        """Store ``definition`` as the next version of ``name``; ``(latest, False)`` when it equals the latest."""
        if parse_ref(name) != (name, None):
            raise InvalidInputError(f"schema name {name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}")
        check_definition(definition, self._limits)
        digest = canonical_hash(definition)
        meta_key = keys.schema_meta(tenant, name)
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(meta_key)
                    meta = await pipe.hgetall(meta_key)
                    latest = int(meta.get("latest", 0))
                    if latest:
                        current = await self._load(tenant, name, latest)
                        if current.hash == digest:
                            pipe.multi()  # type: ignore[no-untyped-call]
                            pipe.hset(meta_key, "retired", 0)
                            await pipe.execute()
                            return current, False
                    version = SchemaVersion(
                        name=name,
                        version=latest + 1,
                        hash=digest,
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        **definition.model_dump(),
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(keys.schema_version(tenant, name, version.version), version.model_dump_json())
                    pipe.hset(meta_key, mapping={"latest": version.version, "retired": 0})
                    pipe.sadd(keys.schema_names(tenant), name)
                    await pipe.execute()
                    return version, True
                except WatchError:
                    continue

    async def resolve(self, tenant: str, ref: str) -> CompiledSchema:
        """The compiled schema an extraction uses: ``name`` (latest, not retired) or ``name@N``."""
        parsed = parse_ref(ref)
        if parsed is None:
            raise SchemaNotFoundError(f"{ref!r} is not a schema reference (`name` or `name@3`)", schema=ref)
        name, version = parsed
        owner, latest, retired = await self._locate(tenant, name)
        if retired and version is None:
            raise SchemaNotFoundError(f"schema {name!r} is retired; name a version (`{name}@{latest}`)", schema=ref)
        return await self._compiled_version(owner, name, version or latest)

    async def latest(self, tenant: str, name: str) -> SchemaSummary:
        owner, latest, retired = await self._locate(tenant, name)
        version = await self._load(owner, name, latest)
        return SchemaSummary(**version.model_dump(), retired=retired, bundled=owner == keys.SHARED_TENANT)

    async def version(self, tenant: str, name: str, number: int) -> SchemaVersion:
        owner, latest, _ = await self._locate(tenant, name)
        if not 1 <= number <= latest:
            raise SchemaNotFoundError(f"schema {name!r} has no version {number} (latest is {latest})")
        return await self._load(owner, name, number)

    async def list_latest(self, tenant: str) -> list[SchemaSummary]:
        """Latest version of every schema the tenant can see, sorted by name; retired ones included and marked."""
        names = {str(n) for n in await self._redis.smembers(keys.schema_names(tenant))}
        shared = {str(n) for n in await self._redis.smembers(keys.schema_names(keys.SHARED_TENANT))}
        return [await self.latest(tenant, name) for name in sorted(names | shared)]

    async def retire(self, tenant: str, name: str) -> SchemaSummary:
        """Hide ``name`` from extraction by name; its versions stay readable. Bundled schemas cannot be retired."""
        owner, _, _ = await self._locate(tenant, name)
        if owner != tenant:
            raise SchemaNotFoundError(
                f"schema {name!r} is bundled, not registered by this tenant; it cannot be retired"
            )
        await self._redis.hset(keys.schema_meta(tenant, name), "retired", 1)
        return await self.latest(tenant, name)

    async def register_bundled(self, definitions: Mapping[str, SchemaDefinition]) -> list[SchemaVersion]:
        """Register the bundled schemas in the shared namespace (a new version only where the content changed)."""
        return [(await self.register(keys.SHARED_TENANT, name, d))[0] for name, d in sorted(definitions.items())]

    async def _locate(self, tenant: str, name: str) -> tuple[str, int, bool]:
        """Which namespace holds ``name`` for this tenant, its latest version and whether it is retired."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.schema_meta(tenant, name), "latest", "retired")
            pipe.hmget(keys.schema_meta(keys.SHARED_TENANT, name), "latest", "retired")
            own, shared = await pipe.execute()
        for owner, (latest, retired) in ((tenant, own), (keys.SHARED_TENANT, shared)):
            if latest is not None:
                return owner, int(latest), retired == "1"
        raise SchemaNotFoundError(f"no schema named {name!r}", schema=name)

    async def _load(self, owner: str, name: str, number: int) -> SchemaVersion:
        raw = await self._redis.get(keys.schema_version(owner, name, number))
        if raw is None:
            raise SchemaNotFoundError(f"schema {name!r} has no version {number}")
        return SchemaVersion.model_validate_json(raw)

    async def _compiled_version(self, owner: str, name: str, number: int) -> CompiledSchema:
        """Versions are immutable, so a compiled one is kept in memory for good (bounded)."""
        memo = f"{owner}\0{name}\0{number}"
        compiled = self._compiled.get(memo)
        if compiled is None:
            compiled = compile_schema(await self._load(owner, name, number))
            if len(self._compiled) >= _COMPILED_CACHE_SIZE:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[memo] = compiled
        return compiled
