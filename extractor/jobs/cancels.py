"""How a cancel reaches the workers at once: the cancel publishes the batch id, and each worker cancels the chunks of
that batch it is running.

A worker claims a chunk's items when the chunk starts, so no Redis round trip stands between a permit and a model
call; this is what stops those items when their batch is cancelled. A batch id that arrives before its chunk is
registered (the claim and the message travel on different connections) is remembered, and the chunk cancels itself
as it registers. While the subscription is down (or silently dead), messages are lost: each chunk's heartbeat also
reads its batch's state, at least every 2 s, so a missed cancel still lands within a cancel's wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from extractor import keys
from extractor.jobs.retry import redis_pause

__all__ = ["CancelWatch"]

log = logging.getLogger("extractor.jobs")

_REMEMBERED = 1024


class CancelWatch:
    """The chunk tasks this worker runs, by batch, and the batches recently cancelled."""

    def __init__(self) -> None:
        self._running: dict[str, set[asyncio.Task[int]]] = {}
        self._cancelled: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first

    @contextlib.contextmanager
    def watching(self, batch_id: str, task: asyncio.Task[int]) -> Iterator[None]:
        """While in this block, a cancel of ``batch_id`` cancels ``task`` (at once, if it came already)."""
        tasks = self._running.setdefault(batch_id, set())
        tasks.add(task)
        if batch_id in self._cancelled:
            task.cancel()
        try:
            yield
        finally:
            tasks.discard(task)
            if not tasks:
                del self._running[batch_id]

    def cancelled(self, batch_id: str) -> bool:
        """Whether this worker heard of ``batch_id``'s cancel (recently: it remembers the last 1,024)."""
        return batch_id in self._cancelled

    def cancel(self, batch_id: str) -> None:
        """The batch was cancelled: cancel its running chunks, and any that register later."""
        self._cancelled[batch_id] = None
        while len(self._cancelled) > _REMEMBERED:
            del self._cancelled[next(iter(self._cancelled))]
        for task in self._running.get(batch_id, ()):
            task.cancel()

    async def listen(self, redis: Redis) -> None:
        """Follow the cancel channel until cancelled; while Redis is away, retry with a growing pause."""
        pause = 0.0
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.BATCH_CANCELS)
                    pause = 0.0
                    async for message in pubsub.listen():
                        data = message["data"]
                        self.cancel(data.decode() if isinstance(data, bytes) else str(data))
            except Exception as exc:  # never end silently: the heartbeats would be the only way a cancel lands
                pause = redis_pause(pause)
                if isinstance(exc, RedisError):
                    log.warning("cancel channel: Redis unavailable (%s); resubscribing in %.1fs", exc, pause)
                else:
                    log.exception("cancel channel: unexpected error; resubscribing in %.1fs", pause)
                await asyncio.sleep(pause)
