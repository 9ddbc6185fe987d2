"""The result cache in Redis. Keys cover everything that changes an answer; only ok and empty results are stored."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from redis.asyncio import Redis

from extractor import keys
from extractor.extraction.result import ExtractionResult
from extractor.settings import CacheSettings

__all__ = ["ResultCache", "cache_digest"]


def cache_digest(*, schema_hash: str, model: str, prompt_version: str, options: dict[str, Any], text: str) -> str:
    """sha256 over the schema's content hash, model, prompt version, resolved options and the text's own sha256."""
    text_hash = hashlib.sha256(text.encode()).hexdigest()
    material = json.dumps([schema_hash, model, prompt_version, options, text_hash], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


class ResultCache:
    def __init__(self, redis: Redis, settings: CacheSettings) -> None:
        self._redis = redis
        self._ttl = {"ok": settings.ttl_s, "empty": settings.empty_ttl_s}

    async def get(self, tenant: str, digest: str) -> ExtractionResult | None:
        raw = await self._redis.get(keys.cache(tenant, digest))
        return None if raw is None else ExtractionResult.model_validate_json(raw)

    async def put(self, tenant: str, digest: str, result: ExtractionResult) -> None:
        ttl = self._ttl[result.status]
        if ttl > 0:
            await self._redis.set(keys.cache(tenant, digest), result.model_dump_json(), ex=ttl)
