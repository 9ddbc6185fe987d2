"""A batch worker stops calling the model while it cannot record results, and resumes once Redis answers again.

Each item's result is paid for (tokens, model time) before it is written: during a Redis outage a worker that kept
calling the model would pay for answers it then loses. The first failed write closes the gate; every item waits at
the gate before its next model call, and one of them pings Redis, with a growing pause, until it answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

__all__ = ["StoreGate"]

log = logging.getLogger(__name__)

_FIRST_PAUSE_S = 0.5
_LONGEST_PAUSE_S = 10.0


class StoreGate:
    def __init__(self, ping: Callable[[], Awaitable[object]]) -> None:
        self._ping = ping
        self._open = asyncio.Event()
        self._open.set()
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def close(self, why: BaseException) -> None:
        """A write failed: no new model calls until Redis answers."""
        if self._open.is_set():
            log.warning("cannot record batch results (Redis: %s): model calls paused until it answers", why)
            self._open.clear()

    async def wait(self) -> None:
        """Return once results can be recorded; while they cannot, one waiter pings Redis and the others wait."""
        while not self._open.is_set():
            if self._lock.locked():
                await self._open.wait()
                continue
            async with self._lock:
                await self._recover()

    async def _recover(self) -> None:
        pause = _FIRST_PAUSE_S
        while True:
            try:
                await self._ping()
            except RedisError:
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE_S)
                continue
            log.info("Redis answers again: batch model calls resume")
            self._open.set()
            return
