"""Auto-pipelining: the Redis commands that tasks issue in one event-loop iteration go to Redis as one pipeline.

A batch worker has dozens of items reaching the same step together (a model endpoint answers a wave of calls at
once). One round trip and one pool checkout for all of them costs much less CPU than one each. The pipeline leaves
at the end of the loop iteration in which its first command was queued, so a lone caller waits for nothing, but
every caller waits an iteration or two longer than with a command of its own. Use it where CPU matters more than
that: the result cache and a batch item's outcome, nothing that stands between a permit and a model call. What it
saves is measured in docs/benchmarks.md (batch throughput, auto-pipelining).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

__all__ = ["AutoPipeline", "Queue"]

Queue = Callable[[Pipeline], Awaitable[Any] | Any]
"""Queues exactly one command on the pipeline it is given."""


class AutoPipeline:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[tuple[Queue, asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def call(self, queue: Queue) -> Any:
        """The reply to the command ``queue`` puts on the next pipeline; its error, raised, if it failed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((queue, future))
        if len(self._queued) == 1:
            loop.call_soon(self._flush_soon)
        return await future

    def _flush_soon(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)  # keep a reference until it is done
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Queue, asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for queue, _ in batch:
                    queued = queue(pipe)
                    # A script call is a coroutine that queues its command; a command returns the pipeline, which is
                    # not awaited: awaiting a cluster pipeline (re)initialises it and empties its queue.
                    if inspect.iscoroutine(queued):
                        await queued
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # the loop is shutting down: so are its callers
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # the round trip failed: every caller gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller was cancelled; the command still ran, as a sent command does
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
