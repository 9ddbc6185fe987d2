"""The result cache in Redis. Keys cover everything that changes an answer; only ok and empty results are stored."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import pydantic_core
from redis.asyncio import Redis
from redis.exceptions import RedisError

from extractor import keys
from extractor.autopipeline import AutoPipeline
from extractor.extraction.result import ExtractionResult
from extractor.settings import CacheSettings

__all__ = ["PER_REQUEST", "ResultCache", "cache_digest", "hit_json", "stored_status"]

log = logging.getLogger(__name__)

FORMAT = 2
"""Of the stored JSON; part of every key, so entries of another format are never read."""

PER_REQUEST = frozenset({"cached", "attempts", "usage", "timings_ms"})
"""What a result says about the request that made it rather than about the document: not stored."""

_HIT_USAGE = '"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}'


def hit_json(stored: str, timings_ms: dict[str, float]) -> str:
    """A cache hit's answer from the stored JSON, without parsing it: the per-request fields are appended.

    A hit spent no tokens and made no model call: usage and attempts say what this request cost.
    """
    timings = pydantic_core.to_json(timings_ms).decode()
    return f'{stored[:-1]},"cached":true,"attempts":0,{_HIT_USAGE},"timings_ms":{timings}}}'


def stored_status(stored: str) -> str:
    """The status of a stored result, read without parsing it: ``status`` is the model's first field."""
    return "empty" if stored.startswith('{"status":"empty"') else "ok"


def cache_digest(
    *, schema_hash: str, endpoint: str, model: str, prompt_version: str, options: Mapping[str, Any], text: str
) -> str:
    """sha256 over the schema's content hash, the model endpoint (its identity, by default its base URL: two
    endpoints may serve different weights under one model name), model, prompt version, resolved options and the
    text's own sha256."""
    text_hash = hashlib.sha256(text.encode()).hexdigest()
    material = [FORMAT, schema_hash, endpoint, model, prompt_version, sorted(options.items()), text_hash]
    return hashlib.sha256(pydantic_core.to_json(material)).hexdigest()


class ResultCache:
    def __init__(self, redis: Redis, settings: CacheSettings) -> None:
        self._batched = AutoPipeline(redis)  # a batch worker's items read and write together: one round trip
        self._ttl = {"ok": settings.ttl_s, "empty": settings.empty_ttl_s}

    async def get(self, tenant: str, digest: str) -> str | None:
        """The stored JSON of the result: everything but the ``PER_REQUEST`` fields (``hit_json`` adds them)."""
        key = keys.cache(tenant, digest)
        try:
            raw = await self._batched.call(lambda pipe: pipe.get(key))
        except RedisError as exc:  # a cache that cannot answer is a miss: the extraction goes on without it
            log.warning("cache not read (Redis: %s); extracting without it", exc)
            return None
        return raw if raw is None or isinstance(raw, str) else raw.decode()

    async def put(self, tenant: str, digest: str, result: ExtractionResult) -> None:
        ttl = self._ttl[result.status]
        if ttl > 0:
            stored = result.model_dump_json(exclude=set(PER_REQUEST))
            key = keys.cache(tenant, digest)
            await self._batched.call(lambda pipe: pipe.set(key, stored, ex=ttl))
