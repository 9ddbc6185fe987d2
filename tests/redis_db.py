"""A test's own Redis database on the machine's server: flushed before the test and after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

__all__ = ["flushed_db"]


@asynccontextmanager
async def flushed_db(url: str) -> AsyncIterator[Redis]:
    """A client of ``url`` (``redis://127.0.0.1:6379/N``: each suite has its N), its database empty on both ends."""
    client = Redis.from_url(url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
