"""Telling a batch that never existed from one whose data Redis lost.

A batch id carries its creation time (its first 12 hex digits are the milliseconds since the epoch, as in UUIDv7),
and Redis holds a marker of when its data begins (``keys.STORE_EPOCH``, set once when absent: at start, and again
by the first lookup after a restart without persistence or a flush). A missing batch made before that marker, and
recently enough that it would not have expired, was lost with the data: 410 ``batch-lost`` rather than 404.
"""

from __future__ import annotations

import logging
import secrets
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from extractor import keys

__all__ = ["created_at", "mark_store_epoch", "new_batch_id", "store_epoch"]

log = logging.getLogger(__name__)

_TIME_DIGITS = 12


def new_batch_id(now: float | None = None) -> str:
    """32 lowercase hex digits: the creation time in milliseconds (12), then 80 random bits (20)."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:0{_TIME_DIGITS}x}{secrets.token_hex(10)}"


def created_at(batch_id: str) -> float:
    """When the batch of ``batch_id`` was made (epoch seconds), read from the id itself."""
    return int(batch_id[:_TIME_DIGITS], 16) / 1000


async def store_epoch(redis: Redis) -> float:
    """When this Redis's data begins; marked now if no marker is there (its data was just lost, or never held)."""
    now = time.time()
    await redis.set(keys.STORE_EPOCH, repr(now), nx=True)
    stored = await redis.get(keys.STORE_EPOCH)
    return float(stored) if stored is not None else now


async def mark_store_epoch(redis: Redis) -> None:
    """At start: mark where the data begins if no marker is there (best effort: Redis may not answer yet)."""
    try:
        await store_epoch(redis)
    except RedisError as exc:
        log.warning("could not mark when the store's data begins (Redis: %s); the first batch lookup will", exc)
