"""The Redis databases of the suites, on the machine's server (127.0.0.1:6379), and a test's own database flushed
before the test and after it.

Each suite has its database, so suites run one after another never see each other's keys: 15 for the app in-process
(``tests/integration``), 12 for ``extractor serve`` and ``worker`` as subprocesses, 11 for observability, 14 for
end-to-end, 10 for the browser, 6 for ``extractor eval``, 3 for streamed extractions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

__all__ = ["INTEGRATION_URL", "STREAMING_URL", "SUBPROCESS_URL", "flushed_db"]

INTEGRATION_URL = "redis://127.0.0.1:6379/15"
"""The app in-process under ``tests/integration`` (its conftest's ``redis`` fixture)."""

HOSTILE_URL = "redis://127.0.0.1:6379/1"
"""Hostile input, limits and faults (``tests/integration/test_hostile*.py``, the OpenAPI contract run)."""

SUBPROCESS_URL = "redis://127.0.0.1:6379/12"
"""``extractor serve`` and ``extractor worker`` run as processes (shutdown, ``schemas sync``)."""

STREAMING_URL = "redis://127.0.0.1:6379/3"
"""Streamed extractions (``tests/integration/test_extract_stream.py``), in-process and under uvicorn."""


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
