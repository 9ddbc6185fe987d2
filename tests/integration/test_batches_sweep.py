"""SAQ's sweep taking a live chunk for a dead worker's: the batch must still finish.

On a starved machine the sweep of one worker can find another worker's chunk in the active list with a stale
heartbeat, or before the worker that just took it has marked it active. The sweep then aborts the job and re-queues
it (with a retry delay), while the worker that runs it sees the abort, cancels its chunk, and finishes the job as
aborted: SAQ's finish deletes the job and drops it from the schedule, re-queued or not. Whichever of the two comes
last decides whether the chunk still has a job; when the worker's finish came last, its items stayed `running`
with no job to run them, and the batch never ended (seen with 8 workers on 2 loaded cores, bench/fleet.py). Real
Redis (db 15), SAQ's real worker and sweep, the order forced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from saq.job import Status

from extractor import keys
from extractor.errors import InvalidInputError
from extractor.jobs.queue import BatchQueue, chunk_key, open_queue
from extractor.jobs.state import BatchStore, new_batch_id
from extractor.jobs.worker import build_worker
from extractor.settings import JobsSettings
from tests.support.redis_db import INTEGRATION_URL

SETTINGS = JobsSettings(concurrency=4, chunk_size=4, retry_base_s=0.2, retry_max_s=0.5, heartbeat_s=10, sweep_s=60)


class Blocking:
    """The pipeline: every item's first call waits until released; then each item fails as invalid (final)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.calls = 0

    async def extract(
        self, tenant: str, schema_ref: str, text: str, options: Any, *, model_gate: Any = None, report: Any = None
    ) -> Any:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        raise InvalidInputError("not a receipt")


async def test_a_live_chunk_swept_as_stale_still_finishes_its_batch(redis: Redis) -> None:
    store = BatchStore(redis, 3600)
    batch_id = new_batch_id()
    docs = [(f"d{n}", f"text {n}") for n in range(4)]
    await store.create(
        batch_id, tenant="t", schema_ref="receipt@1", options={}, documents=docs, chunk_size=4, digest="x"
    )
    saq, sweeper = open_queue(INTEGRATION_URL), open_queue(INTEGRATION_URL)
    queue = BatchQueue(saq, SETTINGS)
    extraction = Blocking()
    worker = build_worker(extraction, store, queue, SETTINGS)
    running = asyncio.create_task(worker.start())
    try:
        await queue.enqueue(batch_id, 4, 4)
        await asyncio.wait_for(extraction.started.wait(), 10)
        key = chunk_key(batch_id, 0)
        stored = await saq.job(key)
        assert stored is not None
        # The sweep's view: the job is in the active list but its record does not say active yet.
        stored.status = Status.QUEUED
        await saq.redis.set(stored.id, saq.serialize(stored))
        await saq.redis.delete(sweeper._sweep)  # the worker's own sweep at its start holds the lock
        try:  # as SAQ's worker runs its sweep: an error is logged, and the worker goes on
            assert await sweeper.sweep(lock=1, abort=3.0) == [stored.id]
        except RuntimeError as exc:
            logging.getLogger(__name__).warning("the sweep failed: %s", exc)
        extraction.release.set()
        deadline = asyncio.get_running_loop().time() + 15
        while (record := await store.get(batch_id)).finished_at is None:
            if asyncio.get_running_loop().time() > deadline:
                job = await saq.job(key)
                raise AssertionError(f"the batch did not finish: {record.counts}, its chunk's job: {job}")
            await asyncio.sleep(0.1)
        assert record.counts == {"queued": 0, "running": 0, "ok": 0, "empty": 0, "failed": 4, "cancelled": 0}
        assert await redis.hlen(keys.batch_results(batch_id)) == 4
    finally:
        await worker.stop()
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await sweeper.disconnect()
        await saq.disconnect()
