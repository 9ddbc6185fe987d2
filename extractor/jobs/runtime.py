"""Open the batch machinery for a process: the queue, the API's batch service and, where asked, a worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from extractor.errors import InvalidInputError
from extractor.jobs.queue import BatchQueue, open_queue
from extractor.jobs.service import BatchService
from extractor.jobs.state import BatchStore
from extractor.jobs.worker import build_worker, stop_gracefully
from extractor.services import Services

__all__ = ["open_batches", "run_worker"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.asynccontextmanager
async def open_batches(services: Services, *, with_worker: bool) -> AsyncIterator[BatchService]:
    """The batch service of an API process; with ``with_worker`` a worker runs in the same process and loop."""
    redis_url = _redis_url(services)
    queue = BatchQueue(open_queue(redis_url), services.settings.jobs)
    await queue.saq.connect()
    store = BatchStore(services.redis, services.settings.jobs.ttl_s)
    task: asyncio.Task[None] | None = None
    worker = build_worker(services, queue, handle_signals=False) if with_worker else None
    if worker is not None:
        task = asyncio.create_task(worker.start())
    try:
        yield BatchService(store, queue, services.registry, services.settings.jobs, services.tracing)
    finally:
        if worker is not None and task is not None:
            # Not worker.stop(): called while start() still awaits its startup hooks, it would be undone when start()
            # goes on (a new event, the stop forgotten) and `await task` would never return. A cancel reaches start()
            # wherever it is, and start() then stops the worker in its own `finally`.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await queue.close()


async def run_worker(services: Services, *, worker_id: str | None = None) -> None:
    """Run a worker until SIGINT or SIGTERM. Then it claims no more chunks, finishes those it holds within
    ``shutdown_grace_s`` and hands the rest back to the queue; a second signal stops it at once."""
    queue = BatchQueue(open_queue(_redis_url(services)), services.settings.jobs)
    await queue.saq.connect()
    worker = build_worker(services, queue, handle_signals=False, worker_id=worker_id)
    try:
        running = asyncio.create_task(worker.start())
        await _until_signalled(running)
        await stop_gracefully(worker, queue, services.settings.shutdown_grace_s)
        await running
    finally:
        await queue.close()


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


def _redis_url(services: Services) -> str:
    if services.settings.redis_url is None:
        raise InvalidInputError("batch jobs need Redis: set EXTRACTOR_REDIS_URL")
    return services.settings.redis_url
