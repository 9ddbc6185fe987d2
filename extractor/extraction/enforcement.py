"""Output enforcement levels, the ``response_format`` each sends, and the probe that finds the strongest one.

Strongest first: ``json_schema`` (OpenAI strict structured outputs) > ``json_object_schema`` (``json_object`` with a
``schema``, which llama.cpp and Together turn into a grammar) > ``json_object`` > ``prompt`` (nothing enforced,
the reply is parsed and repaired). The probe asks for a reply that only an enforcing endpoint gives, so an endpoint
that accepts a level without enforcing it is caught too. The answer is kept in Redis per endpoint and model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from extractor import keys
from extractor.errors import ModelUnavailableError, UpstreamError, UpstreamRateLimitedError, UpstreamTimeoutError
from extractor.extraction.model import ModelClient
from extractor.vocabulary import EnforcementLevel

__all__ = ["EnforcementProber", "response_format"]

log = logging.getLogger(__name__)

_PROBE_TTL_S = 24 * 3600


_FORMATS: dict[EnforcementLevel, Callable[[dict[str, Any], bool], dict[str, Any] | None]] = {
    EnforcementLevel.JSON_SCHEMA: lambda schema, strict: {
        "type": "json_schema",
        "json_schema": {"name": "extraction", "schema": schema, "strict": strict},
    },
    EnforcementLevel.JSON_OBJECT_SCHEMA: lambda schema, _: {"type": "json_object", "schema": schema},
    EnforcementLevel.JSON_OBJECT: lambda _schema, _strict: {"type": "json_object"},
    EnforcementLevel.PROMPT: lambda _schema, _strict: None,
}


def response_format(level: EnforcementLevel, schema: dict[str, Any], strict: bool) -> dict[str, Any] | None:
    return _FORMATS[level](schema, strict)


_PROBE_TOKEN = "probe-7f3a"
_PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"probe": {"type": "string", "enum": [_PROBE_TOKEN]}},
    "required": ["probe"],
    "additionalProperties": False,
}
_PROBE_MESSAGES = [
    {"role": "system", "content": "You answer in JSON."},
    {"role": "user", "content": "Say hello."},
]
# 4xx answers that are about the request's credentials or model, not its response_format.
_NOT_ABOUT_THE_LEVEL = frozenset({401, 403, 404})
# Errors that say nothing about the level (the endpoint is busy or away): they end the probe, uncached.
_TRANSIENT = (UpstreamRateLimitedError, UpstreamTimeoutError, ModelUnavailableError)


def _enforced(level: EnforcementLevel, content: str) -> bool:
    """Whether the reply shows the level was enforced, not merely accepted."""
    try:
        value = json.loads(content)
    except ValueError:
        return False
    if level is EnforcementLevel.JSON_OBJECT:
        return isinstance(value, dict)
    return bool(value == {"probe": _PROBE_TOKEN})


class EnforcementProber:
    """Finds, once per endpoint and model, the strongest level that endpoint enforces."""

    def __init__(self, redis: Redis, model: ModelClient, forced: EnforcementLevel | None = None) -> None:
        self._redis = redis
        self._model = model
        self._forced = forced
        self._known: dict[str, EnforcementLevel] = {}
        self._lock = asyncio.Lock()

    async def level(self) -> EnforcementLevel:
        if self._forced is not None:
            return self._forced
        model_name = await self._model.name()
        endpoint = hashlib.sha256(f"{self._model.base_url}\0{model_name}".encode()).hexdigest()[:32]
        known = self._known.get(endpoint)
        if known is not None:
            return known
        async with self._lock:
            if endpoint not in self._known:
                self._known[endpoint] = await self._stored_or_probe(endpoint)
        return self._known[endpoint]

    async def _stored_or_probe(self, endpoint: str) -> EnforcementLevel:
        stored = await self._redis.get(keys.probe(endpoint))
        if stored is not None:
            return EnforcementLevel(str(stored))
        level = await self.probe()
        await self._redis.set(keys.probe(endpoint), level.value, ex=_PROBE_TTL_S)
        return level

    async def probe(self) -> EnforcementLevel:
        """The strongest level the endpoint enforces. Raises when the endpoint answers no level at all, or refuses
        for a reason that is not the level (bad key, unknown model, busy): such an answer must not be remembered.
        """
        answered = False
        for level in list(EnforcementLevel)[:-1]:
            try:
                reply = await self._model.complete(
                    _PROBE_MESSAGES, response_format(level, _PROBE_SCHEMA, True), max_tokens=32, temperature=0.0, seed=0
                )
            except UpstreamError as exc:
                if isinstance(exc, _TRANSIENT) or exc.extra.get("upstream_status") in _NOT_ABOUT_THE_LEVEL:
                    raise
                log.info("endpoint refuses enforcement level %s: %s", level, exc.detail)
                continue
            answered = True
            if _enforced(level, reply.content):
                log.info("enforcement level for %s: %s", self._model.base_url, level)
                return level
            log.info("endpoint accepts enforcement level %s but does not enforce it", level)
        if not answered:
            raise UpstreamError("the model endpoint refused every request format; see its logs")
        return EnforcementLevel.PROMPT
