"""Named, versioned schemas in Redis: validate on write, immutable versions, compiled validators kept in memory.

A tenant sees its own schemas and, beside them, the bundled ones (``keys.SHARED_TENANT``), whose names are
reserved: a tenant cannot register a schema of the same name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from extractor import keys
from extractor.errors import ConflictError, SchemaNotFoundError
from extractor.offload import off_loop
from extractor.registry.checks import check_content, check_limits
from extractor.registry.compiled import CompiledSchema, compile_schema
from extractor.registry.schema import (
    SchemaDefinition,
    SchemaSummary,
    SchemaVersion,
    canonical_hash,
    check_name,
    parse_ref,
)
from extractor.settings import RegistrySettings
from extractor.singleflight import SingleFlight

__all__ = ["SchemaRegistry", "SchemaSummary", "read_definitions"]

log = logging.getLogger(__name__)

_COMPILED_CACHE_SIZE = 512
_POINTER_CACHE_SIZE = 10_000


def read_definitions(folder: Path) -> dict[str, SchemaDefinition]:
    """Every ``*.json`` in ``folder`` as a SchemaDefinition, named by its file stem."""
    return {path.stem: SchemaDefinition.model_validate_json(path.read_text()) for path in folder.glob("*.json")}


class SchemaRegistry:
    def __init__(
        self, redis: Redis, limits: RegistrySettings, bundled: Mapping[str, SchemaDefinition] | None = None
    ) -> None:
        self._redis = redis
        self._limits = limits
        self._bundled = dict(bundled or {})
        self._compiled: dict[str, CompiledSchema] = {}
        self._pointers: dict[tuple[str, str], tuple[float, tuple[str, int, bool]]] = {}
        self._locating: SingleFlight[tuple[str, str, int], tuple[str, int, bool]] = SingleFlight()
        self._generations: dict[str, int] = {}  # per name, bumped by _forget: a lookup begun before it is stale
        self._compiling: SingleFlight[str, CompiledSchema] = SingleFlight()

    async def register(self, tenant: str, name: str, definition: SchemaDefinition) -> tuple[SchemaVersion, bool]:
        """Store ``definition`` as the next version of ``name``; ``(latest, False)`` when it equals the latest."""
        check_name(name)
        check_limits(definition, self._limits)  # cheap, on the loop: bounds what the thread below is given
        await off_loop(check_content, definition)
        if tenant != keys.SHARED_TENANT and (
            name in self._bundled or await self._redis.exists(keys.schema_meta(keys.SHARED_TENANT, name))
        ):
            # Versions cite `name@N` without a namespace: a tenant's `receipt@2` beside the bundled one would be
            # ambiguous in every stored result and batch.
            raise ConflictError(f"{name!r} is a bundled schema; register yours under another name (e.g. my_{name})")
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
                            self._forget(name)
                            return current, False
                    version = SchemaVersion(
                        name=name,
                        version=latest + 1,
                        hash=digest,
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        **definition.model_dump(),
                    )
                    compiled = await off_loop(compile_schema, version)  # extraction's needs must work now
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(keys.schema_version(tenant, name, version.version), version.model_dump_json())
                    pipe.hset(meta_key, mapping={"latest": version.version, "retired": 0})
                    pipe.sadd(keys.schema_names(tenant), name)
                    await pipe.execute()
                    self._forget(name)
                    self._keep_compiled(tenant, name, version.version, compiled)
                    return version, True
                except WatchError:
                    continue

    async def resolve(self, tenant: str, ref: str) -> CompiledSchema:
        """The compiled schema an extraction uses: ``name`` (latest, not retired) or ``name@N``."""
        parsed = parse_ref(ref)
        if parsed is None:
            raise SchemaNotFoundError(f"{ref!r} is not a schema reference (`name` or `name@3`)", schema=ref)
        name, version = parsed
        owner, latest, retired = await self._locate_cached(tenant, name)
        if retired and version is None:
            raise SchemaNotFoundError(f"schema {name!r} is retired; name a version (`{name}@{latest}`)", schema=ref)
        return await self._compiled_version(owner, name, version or latest)

    async def latest(self, tenant: str, name: str) -> SchemaSummary:
        check_name(name)
        owner, latest, retired = await self._locate(tenant, name)
        version = await self._load(owner, name, latest)
        return SchemaSummary(**version.model_dump(), retired=retired, bundled=owner == keys.SHARED_TENANT)

    async def version(self, tenant: str, name: str, number: int) -> SchemaVersion:
        check_name(name)
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
        check_name(name)
        owner, _, _ = await self._locate(tenant, name)
        if owner != tenant:
            raise SchemaNotFoundError(
                f"schema {name!r} is bundled, not registered by this tenant; it cannot be retired"
            )
        await self._redis.hset(keys.schema_meta(tenant, name), "retired", 1)
        self._forget(name)
        return await self.latest(tenant, name)

    async def register_bundled(self, definitions: Mapping[str, SchemaDefinition] | None = None) -> list[SchemaVersion]:
        """Register the bundled schemas (or ``definitions``) in the shared namespace (a new version only where the
        content changed)."""
        chosen = self._bundled if definitions is None else definitions
        return [(await self.register(keys.SHARED_TENANT, name, d))[0] for name, d in sorted(chosen.items())]

    async def _locate_cached(self, tenant: str, name: str) -> tuple[str, int, bool]:
        """``_locate`` for the extraction path, remembered for ``latest_ttl_s``: saves a Redis round trip per request.

        A version registered through another process becomes the default within that time; this process's own
        registrations and retirements take effect at once. ``name@N`` is always exact.
        """
        now = time.monotonic()
        memo = self._pointers.get((tenant, name))
        if memo is not None and memo[0] > now:
            return memo[1]
        generation = self._generations.get(name, 0)
        try:
            return await self._locating.run(
                (tenant, name, generation), lambda: self._locate_and_remember(tenant, name, generation)
            )
        except RedisError as exc:
            if memo is None:
                raise
            # Versions never change: what `name` last meant is served while Redis is away (a new version registered
            # meanwhile elsewhere shows once it is back).
            log.warning("Redis did not answer (%s): schema %r served as last seen (version %d)", exc, name, memo[1][1])
            return memo[1]

    async def _locate_and_remember(self, tenant: str, name: str, generation: int) -> tuple[str, int, bool]:
        located = await self._locate(tenant, name)
        if self._generations.get(name, 0) == generation:  # not if this process registered or retired it meanwhile
            if len(self._pointers) >= _POINTER_CACHE_SIZE:
                self._pointers.clear()
            self._pointers[(tenant, name)] = (time.monotonic() + self._limits.latest_ttl_s, located)
        return located

    def _forget(self, name: str) -> None:
        """Drop remembered pointers to ``name`` for every tenant (a shared schema shows through to all), and let no
        lookup begun before this remember its answer or share it with a later caller."""
        self._generations[name] = self._generations.get(name, 0) + 1
        for key in [k for k in self._pointers if k[1] == name]:
            del self._pointers[key]

    async def _locate(self, tenant: str, name: str) -> tuple[str, int, bool]:
        """Which namespace holds ``name`` for this tenant, its latest version and whether it is retired."""
        try:
            return await self._locate_stored(tenant, name)
        except SchemaNotFoundError:
            if name not in self._bundled:
                raise
        log.warning("bundled schema %r is missing from Redis (flushed, or an empty replica?): registering again", name)
        await self.register_bundled()
        return await self._locate_stored(tenant, name)

    async def _locate_stored(self, tenant: str, name: str) -> tuple[str, int, bool]:
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
        key = f"{owner}\0{name}\0{number}"
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = await self._compiling.run(key, lambda: self._compile(owner, name, number))
        return compiled

    async def _compile(self, owner: str, name: str, number: int) -> CompiledSchema:
        compiled = await off_loop(compile_schema, await self._load(owner, name, number))
        self._keep_compiled(owner, name, number, compiled)
        return compiled

    def _keep_compiled(self, owner: str, name: str, number: int, compiled: CompiledSchema) -> None:
        if len(self._compiled) >= _COMPILED_CACHE_SIZE:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[f"{owner}\0{name}\0{number}"] = compiled
