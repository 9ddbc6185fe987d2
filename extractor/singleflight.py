"""Concurrent misses of one key share one load: the first caller starts it, the others wait for its outcome.

A cold cache under load otherwise pays once per caller: a batch worker starting 144 items at once compiled the same
schema 144 times before any of them reached the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._loading: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """``load()``'s outcome, shared with every caller asking for ``key`` while it runs.

        One caller cancelled does not cancel the load the others wait for.
        """
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(task)
