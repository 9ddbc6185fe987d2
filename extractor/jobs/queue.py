"""The queue of batch chunks, on SAQ. Only this module and ``worker.py`` know SAQ exists.

A batch of N documents is cut into chunks of ``chunk_size`` consecutive items; each chunk is one SAQ job whose key
is ``<batch id>:<first index>``, so enqueuing a batch twice (a replayed submission) adds nothing already queued.
A chunk that raises (Redis failing under the worker) is retried with exponential backoff, not at once, so a blip
does not burn every retry in milliseconds; the worker settles the items of a chunk's last attempt itself. A chunk
whose worker died on its last attempt is settled by whichever worker's sweep finds it (``PatientQueue.on_lost``).
A worker that is stopping claims nothing more (``PatientQueue.stop_claiming``). A job the sweep takes for a dead
worker's is re-queued without cancelling the worker that may still run it (``PatientQueue.abort``): a chunk runs
twice at worst, and each item is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from saq.job import Job, Status
from saq.queue.redis import RedisQueue

from extractor import keys
from extractor.jobs.retry import redis_pause
from extractor.redis_connect import connect
from extractor.settings import JobsSettings

__all__ = ["CHUNK_TASK", "BatchQueue", "PatientQueue", "chunk_key", "chunks", "open_queue"]

CHUNK_TASK = "extract_chunk"
_WINDOW = 16
_NO_WAIT_S = 0.01  # how long SAQ's sweep waits for a job to end after its abort (0 would be forever)

# KEYS: active, queued. ARGV: job id. The inverse of the dequeue's BLMOVE (queued LEFT -> active RIGHT): a job that a
# stopping worker took but will not run goes back to the head of the queue, unless the sweep already moved it.
_UNCLAIM = """
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 1 then redis.call('LPUSH', KEYS[2], ARGV[1]) return 1 end
return 0
"""

log = logging.getLogger("extractor.jobs")


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` of each chunk of a batch of ``total`` items."""
    return ((start, min(start + size, total)) for start in range(0, total, size))


def chunk_key(batch_id: str, start: int) -> str:
    """The SAQ job key of a chunk. It starts with the queue's hash tag: SAQ keys a job's abort flag by the job key
    alone (``saq:abort:<key>``), and its enqueue script touches that flag with the queue's keys."""
    return f"{keys.BATCH_QUEUE}:{batch_id}:{start}"


class PatientQueue(RedisQueue):
    """SAQ's Redis queue, except that a dequeue with Redis down backs off before answering "no job", and that a job
    the sweep gives up on is handed to ``on_lost``.

    SAQ 0.26's worker loop starts the next dequeue the moment one fails, so without this it spins while Redis is down.
    A job whose worker died is re-queued by the sweep while it has attempts left; on its last one SAQ only marks it
    aborted, and our code, which settles a chunk's items on its last attempt, never ran. And a chunk's end that
    Redis could not take is logged in one line and left to the sweep (``_unrecorded``).

    What this builds on below SAQ's public API is checked by tests/unit/test_saq_internals.py, against the versions
    pinned in pyproject.toml.
    """

    _pause_s = 0.0
    _claiming = True
    on_lost: Callable[[Job], Awaitable[None]] | None = None

    def stop_claiming(self) -> None:
        """A stopping worker takes no more jobs: each dequeue waits its timeout and answers "no job"; a job that a
        dequeue already in flight brings back is put back at the head of the queue, untouched (no attempt spent)."""
        self._claiming = False

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        """SAQ's sweep, without waiting for the end of an abort that ``abort`` below never signals."""
        swept: list[str] = await super().sweep(lock, abort=_NO_WAIT_S)
        return swept

    async def abort(self, job: Job, error: str, ttl: float = 5) -> None:
        """SAQ's, except for a job the sweep takes for a dead worker's: that one only leaves the active list, and the
        sweep then re-queues it (or, on its last attempt, hands it to ``on_lost``).

        The sweep cannot tell a dead worker from a live one starved past its heartbeat, or one that has taken the
        job and not yet marked it active. SAQ would signal the abort: the live worker cancels its chunk, leaving its
        items running for the re-delivery, and finishes the job as aborted, which deletes the job (and drops it
        from the schedule even after the sweep re-queued it). The chunk then had no job and its batch never ended
        (bench/fleet.py, 8 workers on 2 loaded cores; tests/integration/test_batches_sweep.py). Left alone, a live
        worker finishes its items while the re-queued job claims the same ones, and each item is recorded once.
        """
        if error != self.swept_error_message:
            await super().abort(job, error, ttl)
            return
        await self.redis.lrem(self._active, 0, job.id)
        log.warning("batch queue: chunk %s looked abandoned (%s): handed out again", job.key, job.status.value)

    async def finish(
        self, job: Job, status: Status, *, result: Any = None, error: str | None = None, **kwargs: Any
    ) -> None:
        try:
            await super().finish(job, status, result=result, error=error, **kwargs)
        except RedisError as exc:
            _unrecorded(job, f"as {status.value}", exc)
            return
        if status == Status.ABORTED and error == self.swept_error_message and not job.retryable and self.on_lost:
            await self.on_lost(job)

    async def retry(self, job: Job, error: str | None) -> None:
        try:
            await super().retry(job, error)
        except RedisError as exc:
            _unrecorded(job, "for a retry", exc)

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:  # noqa: ASYNC109 (SAQ)
        if not self._claiming:
            await asyncio.sleep(timeout or 1.0)  # SAQ's loop asks again at once: no spinning until it stops
            return None
        try:
            job: Job | None = await super().dequeue(timeout, poll_interval)
            if job is not None and not self._claiming:
                await self._unclaim(job)
                return None
        except RedisError as exc:
            self._pause_s = redis_pause(self._pause_s)
            log.warning("batch queue: Redis unavailable (%s); next dequeue in %.1fs", exc, self._pause_s)
            await asyncio.sleep(self._pause_s)
            return None
        self._pause_s = 0.0
        return job

    async def disconnect(self) -> None:
        """SAQ's, except on a cluster client, which has a pool per node rather than one ``connection_pool``."""
        if isinstance(self.redis, Redis):
            await super().disconnect()
            return
        await self._pubsub.close()
        await self.redis.aclose()

    async def _unclaim(self, job: Job) -> None:
        """Put back a job taken while stopping; if Redis fails here, the job stays active and unstarted, and the
        sweep hands it out again."""
        await self.redis.eval(_UNCLAIM, 2, self._active, self._queued, job.id)
        log.info("batch queue: chunk %s taken while stopping, put back at the head of the queue", job.key)


def _unrecorded(job: Job, what: str, exc: RedisError) -> None:
    """A chunk's end could not be written (Redis is away). SAQ's worker would raise it out of a task nobody awaits;
    instead the job stays active with a stale heartbeat, and a sweep hands it out again, as for a dead worker's."""
    log.warning("batch queue: chunk %s not recorded %s (Redis: %s); a sweep will hand it out again", job.key, what, exc)


def open_queue(redis_url: str) -> PatientQueue:
    """SAQ's queue on its own connection pool: SAQ reads bytes and blocks on BLMOVE, so no socket timeout. Like the
    service's client, it reconnects and sends again when Redis closed a pooled connection (SAQ's enqueue is keyed,
    so a second send adds nothing)."""
    redis = connect(redis_url, decode_responses=False, socket_timeout=None, socket_connect_timeout=None)
    return PatientQueue(redis, name=keys.BATCH_QUEUE, max_concurrent_ops=32)


class BatchQueue:
    """Enqueue a batch's chunks."""

    def __init__(self, queue: PatientQueue, settings: JobsSettings) -> None:
        self.saq = queue
        self._settings = settings

    async def enqueue(self, batch_id: str, total: int, chunk_size: int) -> int:
        """Enqueue every chunk not already queued or running, in order; returns how many were new.

        Windows of a few concurrent enqueues keep the queue in submission order (so results arrive in order)
        without paying one round trip per chunk in sequence.
        """
        spans = list(chunks(total, chunk_size))
        added = 0
        for window in range(0, len(spans), _WINDOW):
            jobs = await asyncio.gather(*(self._enqueue(batch_id, *span) for span in spans[window : window + _WINDOW]))
            added += sum(job is not None for job in jobs)
        return added

    async def _enqueue(self, batch_id: str, start: int, stop: int) -> Job | None:
        job: Job | None = await self.saq.enqueue(
            CHUNK_TASK,
            key=chunk_key(batch_id, start),
            timeout=0,  # items are bounded by the model timeout; liveness is the heartbeat's job
            heartbeat=self._settings.heartbeat_s,
            retries=self._settings.redeliveries,
            retry_delay=self._settings.retry_base_s,
            retry_backoff=self._settings.retry_max_s,  # doubling per retry, at most this
            ttl=-1,  # our own state keeps the outcome; SAQ's record of a finished chunk is dropped at once
            batch_id=batch_id,
            start=start,
            stop=stop,
        )
        return job

    async def close(self) -> None:
        """Best effort: with Redis gone, SAQ's unsubscribe fails, and there is nothing left to release."""
        with contextlib.suppress(RedisError):
            await self.saq.disconnect()
