"""How a batch worker runs: beside the API in the same loop, or alone until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from saq import Worker
from saq.types import Context

from extractor.jobs.worker import stop_gracefully

__all__ = ["run_until_signalled", "running_beside"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.asynccontextmanager
async def running_beside(worker: Worker[Context] | None) -> AsyncIterator[None]:
    """Run ``worker`` (if any) in this loop while the block runs: ``extractor serve``'s in-process worker."""
    if worker is None:
        yield
        return
    task = asyncio.create_task(worker.start())
    try:
        yield
    finally:
        # Not worker.stop(): called while start() still awaits its startup hooks, it would be undone when start()
        # goes on (a new event, the stop forgotten) and `await task` would never return. A cancel reaches start()
        # wherever it is, and start() then stops the worker in its own `finally`.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_until_signalled(worker: Worker[Context], grace_s: float) -> None:
    """Run ``worker`` until SIGINT or SIGTERM. Then it claims no more chunks, finishes those it holds within
    ``grace_s`` and hands the rest back to the queue; a second signal stops it at once."""
    running = asyncio.create_task(worker.start())
    await _until_signalled(running)
    await stop_gracefully(worker, grace_s)
    await running


async def _until_signalled(running: asyncio.Task[None]) -> None:
    """Wait for SIGINT or SIGTERM (or for ``running`` to end); the handlers go with the first signal, so that a
    second one has its default effect."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for signum in _SIGNALS:
        loop.add_signal_handler(signum, signalled.set)
    waiting = asyncio.create_task(signalled.wait())
    try:
        await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)
