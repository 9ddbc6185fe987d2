"""The in-process batch worker of an API process (``running_beside``) opens and closes cleanly however short its
life."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from extractor.jobs.lifecycle import running_beside
from extractor.runtime import Runtime, open_runtime
from tests.support.app import make_settings


async def test_a_runtime_closed_before_its_worker_started_does_not_hang(redis: Redis) -> None:
    # The app's lifespan can end before the in-process worker's start() has run at all (a short test, a failed
    # start): stopping the worker then must not be undone by start() running afterwards.
    async with open_runtime(make_settings(), with_queue=True) as runtime:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            started = loop.time()
            # Bounded, so that a hang fails here; the old stop hung until this cancel reached the worker's start().
            await asyncio.wait_for(_open_and_close(runtime), timeout=10)
            assert loop.time() - started < 5, "closing waited for a worker that had been told to stop"
            running = [task for task in asyncio.all_tasks() if "saq" in repr(task.get_coro()) and not task.done()]
            assert running == [], "the worker's tasks outlived it"


async def _open_and_close(runtime: Runtime) -> None:
    async with running_beside(runtime.worker()):
        pass  # closed at once, before the worker's task has run
