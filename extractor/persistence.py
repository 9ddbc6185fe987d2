"""What the service needs of Redis's persistence, checked at start: without it, a Redis restart loses every batch
and schema (docs/reliability.md says which settings to use).

Warns, does not refuse: a cache-only deployment may choose no persistence. ``CONFIG`` may be disabled or renamed
(managed Redis services do this); then nothing can be known and the service says so once.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from extractor.jobs.lineage import mark_store_epoch

__all__ = ["inspect_store", "persistence_problem"]

log = logging.getLogger(__name__)


def persistence_problem(config: dict[str, Any]) -> str | None:
    """A sentence when neither RDB snapshots (``save``) nor the append-only file (``appendonly``) is on."""
    snapshots = str(config.get("save", "")).strip()
    append_only = str(config.get("appendonly", "no")).strip().lower() == "yes"
    if snapshots or append_only:
        return None
    return (
        "the configured Redis persists nothing (save is empty and appendonly is no): a restart loses every batch, "
        "schema and cached result; set `appendonly yes` (see docs/reliability.md)"
    )


async def inspect_store(redis: Redis) -> None:
    """At start: mark where the store's data begins, and warn when Redis would lose it on a restart."""
    await mark_store_epoch(redis)
    try:
        config: dict[str, Any] = {}
        for name in ("save", "appendonly"):
            config.update({str(key): value for key, value in (await redis.config_get(name)).items()})
    except ResponseError as exc:
        log.info("cannot read Redis's persistence settings (CONFIG refused: %s); make sure it persists its data", exc)
        return
    except RedisError as exc:
        log.warning("cannot read Redis's persistence settings (%s)", exc)
        return
    if (problem := persistence_problem(config)) is not None:
        log.warning(problem)
