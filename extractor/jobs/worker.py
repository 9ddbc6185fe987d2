"""The batch worker: SAQ hands out chunks, each item runs the extraction pipeline under a per-worker limit.

A chunk claims its items when it starts (one round trip), then runs each through the pipeline with transient
retries and records its outcome once. Around each model call an item takes a permit (``jobs.concurrency`` model
calls at once per worker) and nothing else: no Redis stands between a permit and a model call, and the cache, the
outcome's record and the pipeline's own work never idle a permit.
A cancel reaches the worker on the cancel channel (``cancels.py``) and cancels the batch's chunks: their model
calls are aborted and their unstarted items settle as cancelled, before the cancel request returns.
A heartbeat keeps a live chunk's job fresh; a dead worker's job goes stale and SAQ's sweep hands it out again.
A chunk's items run in one task group: if one raises (Redis failing under it), the others are cancelled with it, so
the queue's retry never runs an item that is still running. On the chunk's last attempt its unfinished items fail
instead, so the batch still finishes.
A stopping worker (SIGTERM) claims no more chunks, lets those it holds finish within the grace period, and hands the
rest back to the queue without spending an attempt (``stop_gracefully``): their finished items stay finished, the
others run again on another worker, and each item is still recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from opentelemetry.trace import Link
from redis.exceptions import RedisError
from saq import Worker
from saq.job import Job
from saq.types import Context

from extractor.errors import (
    BatchNotFoundError,
    ChunkAbandonedError,
    ExtractorError,
    InternalError,
    Problem,
    StoreUnavailableError,
)
from extractor.extraction.result import ExtractionResult, ExtractOptions
from extractor.extraction.service import ModelGate
from extractor.jobs.cancels import CancelWatch
from extractor.jobs.metrics import IN_FLIGHT, ITEM_SECONDS, ITEMS
from extractor.jobs.queue import CHUNK_TASK, BatchQueue, PatientQueue
from extractor.jobs.retry import backoff_delay, exponential_delay, is_transient
from extractor.jobs.state import BatchRecord, BatchStore
from extractor.jobs.store_gate import StoreGate
from extractor.settings import JobsSettings
from extractor.telemetry.logs import log_extraction
from extractor.telemetry.report import ExtractionReport
from extractor.telemetry.tracing import Tracing
from extractor.vocabulary import ItemStatus

__all__ = ["ChunkRunner", "Extractor", "build_worker", "error_line", "stop_gracefully"]

log = logging.getLogger("extractor.jobs")

_HAND_BACK = "the worker stopped: chunk handed back to the queue"  # the job's error, for whoever looks
_SETTLE_S = 5.0  # how long a stopping worker waits for its cancelled chunks to settle their items


Outcome = tuple[ItemStatus, str]
"""An item's final status and its result line, encoded."""


class Extractor(Protocol):
    """What a worker runs each document through: the extraction pipeline."""

    async def extract(
        self,
        tenant: str,
        schema_ref: str,
        text: str,
        options: ExtractOptions,
        *,
        model_gate: ModelGate | None = None,
        report: ExtractionReport | None = None,
    ) -> ExtractionResult: ...


def _domain_error(exc: ExtractorError | RedisError) -> ExtractorError:
    return StoreUnavailableError(f"Redis did not answer: {exc}") if isinstance(exc, RedisError) else exc


def error_line(doc_id: str, index: int, problem: Problem) -> dict[str, Any]:
    """A failed item's result line: its problem document."""
    return {"id": doc_id, "index": index, "status": ItemStatus.FAILED, "error": problem.document()}


@contextlib.asynccontextmanager
async def heartbeat(job: Job | None, every_s: float, also: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Touch the job while the chunk runs, so the sweep tells a slow chunk from a dead worker's; ``also`` too."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            if job is not None:
                with contextlib.suppress(Exception):
                    await job.update()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(also(), every_s)  # a slow Redis must not hold back the next touch

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])  # not `await task`: that would also swallow a cancel of the chunk itself


class ChunkRunner:
    """Runs the items of one chunk; one instance per worker process holds the concurrency limit."""

    def __init__(
        self,
        extractor: Extractor,
        store: BatchStore,
        settings: JobsSettings,
        *,
        tracing: Tracing | None = None,
        log_documents: bool = False,
    ) -> None:
        self._extractor = extractor
        self._store = store
        self._settings = settings
        self._permits = asyncio.Semaphore(settings.concurrency)
        self._store_gate = StoreGate(store.ping)
        self.cancels = CancelWatch()
        self._tracing = tracing or Tracing()
        self._log_documents = log_documents

    async def run_chunk(self, ctx: Context, *, batch_id: str, start: int, stop: int) -> int:
        """SAQ task: run items ``start`` to ``stop - 1``; returns how many this run finished."""
        job = ctx.get("job")
        try:
            return await self._run_chunk(job, batch_id, start, stop)
        except Exception as exc:
            if job is None or job.retryable:
                raise  # the queue retries it, after a backoff
            await self._abandon(batch_id, start, stop, f"gave up after {job.attempts} attempts: {exc!r}")
            return 0

    async def _run_chunk(self, job: Job | None, batch_id: str, start: int, stop: int) -> int:
        try:
            record = await self._store.get(batch_id)
        except BatchNotFoundError:
            log.warning("chunk %s:%d of a batch that no longer exists (expired or deleted): dropped", batch_id, start)
            return 0
        items = await self._store.claim(batch_id, start, stop)
        if not items:
            return 0  # finished by an earlier run, or cancelled
        work = asyncio.create_task(self._run_items(record, items))

        async def check_cancelled() -> None:  # a cancel this worker missed on the channel
            if await self._store.cancelled(batch_id):
                self.cancels.cancel(batch_id)

        try:
            with self.cancels.watching(batch_id, work):
                async with heartbeat(job, _beat_s(self._settings), check_cancelled):
                    return await work
        except BaseException as exc:
            # Whatever ended the run (a cancel, a shutdown, Redis failing under an item): a cancelled batch's
            # unfinished items turn cancelled now; a live batch's stay running for the queue's re-delivery.
            await asyncio.shield(self._store.settle(batch_id, start, stop))
            if isinstance(exc, asyncio.CancelledError) and self.cancels.cancelled(batch_id) and not _being_cancelled():
                return 0  # the batch was cancelled: this chunk is done
            raise

    async def _run_items(self, record: BatchRecord, items: list[tuple[int, dict[str, str]]]) -> int:
        options = ExtractOptions.model_validate(record.options)
        links = self._tracing.links(record.trace)  # to the submission's span
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(self._run_item(record, options, index, doc, links)) for index, doc in items]
        return sum(run.result() for run in runs)

    async def settle_lost(self, job: Job) -> None:
        """A chunk the sweep gave up on: its worker died on its last attempt. Its unfinished items fail."""
        kwargs = job.kwargs or {}
        why = f"lost its worker on its last attempt ({job.attempts} of {job.retries})"
        await self._abandon(kwargs["batch_id"], kwargs["start"], kwargs["stop"], why)

    async def _abandon(self, batch_id: str, start: int, stop: int, why: str) -> None:
        """Fail the chunk's unfinished items (trying a few times: Redis may be what failed it)."""
        log.error("chunk %s:%d failed on its last attempt (%s): its unfinished items fail", batch_id, start, why)
        problem = ChunkAbandonedError(f"the queue {why}").problem()
        attempt = 1
        while True:
            try:
                ids = await self._store.doc_ids(batch_id, start, stop)
                lines = {start + n: error_line(doc_id, start + n, problem) for n, doc_id in enumerate(ids)}
                await self._store.abandon(batch_id, lines)
                return
            except RedisError:
                if attempt >= self._settings.transient_attempts:
                    raise
                await asyncio.sleep(exponential_delay(attempt, self._settings))
                attempt += 1

    async def _run_item(
        self, record: BatchRecord, options: ExtractOptions, index: int, doc: dict[str, str], links: list[Link]
    ) -> bool:
        """One item in a trace of its own, linked to the batch's submission; one log line once it is recorded."""
        started, report = time.perf_counter(), ExtractionReport()
        where: dict[str, str | int] = {"extractor.batch.id": record.batch_id, "extractor.batch.index": index}
        with self._tracing.span("extractor.batch.item", where, links=links, root=True):
            status, line = await self._extract(record, options, index, doc, self._permit, report)
            written = await self._record(record.batch_id, index, status, line)
        if written:  # a second run of the item (a re-delivery) records, and counts, nothing
            seconds = time.perf_counter() - started
            ITEMS.labels(status.value).inc()
            ITEM_SECONDS.observe(seconds)
            text = doc["text"] if self._log_documents else None
            log_extraction(
                "batch_item", report, seconds, text, batch_id=record.batch_id, index=index, document_id=doc["id"]
            )
        return written

    async def _record(self, batch_id: str, index: int, status: ItemStatus, line: str) -> bool:
        """Write the item's result; while Redis cannot take it, keep it, pause the model calls, and write it once
        Redis answers again. A write that keeps failing while Redis answers fails the chunk (the queue retries it)."""
        attempt = 1
        while True:
            try:
                return await self._store.finish(batch_id, index, status, line)
            except RedisError as exc:
                if attempt >= self._settings.transient_attempts:
                    raise
                self._store_gate.close(exc)
                await self._store_gate.wait()
                attempt += 1

    @contextlib.asynccontextmanager
    async def _permit(self) -> AsyncIterator[None]:
        """The gate around each model call: one of ``jobs.concurrency`` permits.

        Having given its permit back, the item yields once before its own post-processing, so that the item that
        takes the permit sends its call first: a wave of answers arriving together would otherwise hold every
        next call back behind the whole wave's parsing, validation and grounding.
        """
        await self._store_gate.wait()  # no model call whose result could not be recorded
        async with self._permits:
            IN_FLIGHT.inc()
            try:
                yield
            finally:
                IN_FLIGHT.dec()
        await asyncio.sleep(0)

    async def _extract(
        self,
        record: BatchRecord,
        options: ExtractOptions,
        index: int,
        doc: dict[str, str],
        gate: ModelGate,
        report: ExtractionReport,
    ) -> Outcome:
        """One document through the pipeline, retrying only transient errors (upstream, or Redis under it)."""
        attempt = 1
        while True:
            try:
                result = await self._extractor.extract(
                    record.tenant, record.schema_ref, doc["text"], options, model_gate=gate, report=report
                )
            except (ExtractorError, RedisError) as exc:
                if is_transient(exc) and attempt < self._settings.transient_attempts:
                    await asyncio.sleep(backoff_delay(exc, attempt, self._settings))
                    attempt += 1
                    continue
                problem = _domain_error(exc).problem(tries=attempt)
                return ItemStatus.FAILED, json.dumps(error_line(doc["id"], index, problem))
            except Exception:
                log.exception("bug: batch %s item %d failed unexpectedly", record.batch_id, index)
                return ItemStatus.FAILED, json.dumps(error_line(doc["id"], index, InternalError().problem()))
            # The line is the result's own JSON (encoded in pydantic-core) with the document's id and index first.
            body = result.model_dump_json(by_alias=True)
            return ItemStatus(result.status), f'{{"id":{json.dumps(doc["id"])},"index":{index},{body[1:]}'


def _beat_s(settings: JobsSettings) -> float:
    """How often a chunk touches its job and reads its batch's state: often enough for the sweep (a third of
    ``heartbeat_s``) and for a cancel this worker missed on the channel to land within a cancel's wait (2 s)."""
    return max(min(settings.heartbeat_s / 3, 2.0), 0.5)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_gracefully(worker: Worker[Context], grace_s: float) -> None:
    """Stop ``worker`` for a SIGTERM: claim no more chunks, let the chunks it holds finish within ``grace_s``, hand
    the others back to the queue (their running items stay running, for the next worker to claim), then stop."""
    queue = worker.queue
    if not isinstance(queue, PatientQueue):
        raise TypeError("a worker built by build_worker runs on a PatientQueue")
    queue.stop_claiming()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while (running := _chunk_tasks(worker)) and (left := deadline - loop.time()) > 0:
        log.info("stopping: waiting up to %.1fs for %d chunk(s) to finish", left, len(running))
        await asyncio.wait(running, timeout=left)
    late = {
        job: context["task"] for job, context in list(worker.job_task_contexts.items()) if not context["task"].done()
    }
    if late:
        log.warning("stopping: %d chunk(s) unfinished after %.1fs, handed back to the queue", len(late), grace_s)
        for task in late.values():
            task.cancel()  # its items are aborted and stay running, for the next worker's claim
        await asyncio.wait(late.values(), timeout=_SETTLE_S)
    for job, task in late.items():
        if task.cancelled():  # SAQ re-queues only the chunks it cancels itself: this one is ours to hand back
            job.attempts -= 1  # and a stop is no failed attempt: rolling restarts must not use up its redeliveries
            await queue.retry(job, _HAND_BACK)
    await worker.stop()


def _chunk_tasks(worker: Worker[Context]) -> set[asyncio.Task[Any]]:
    return {context["task"] for context in worker.job_task_contexts.values() if not context["task"].done()}


def build_worker(
    extractor: Extractor,
    store: BatchStore,
    queue: BatchQueue,
    settings: JobsSettings,
    *,
    tracing: Tracing | None = None,
    log_documents: bool = False,
    worker_id: str | None = None,
) -> Worker[Context]:
    """A SAQ worker over our chunk task. It holds twice as many items as permits, so that while some items are in
    Redis or the pipeline, others wait on a permit and no permit idles (and none waits on a dequeue).

    It handles no signals: inside ``serve`` uvicorn owns SIGINT and SIGTERM, and ``extractor worker`` stops it
    gracefully itself (``lifecycle.run_until_signalled``)."""
    runner = ChunkRunner(extractor, store, settings, tracing=tracing, log_documents=log_documents)
    queue.saq.on_lost = runner.settle_lost
    listening: list[asyncio.Task[None]] = []

    async def startup(ctx: Context) -> None:
        listening.append(asyncio.create_task(runner.cancels.listen(queue.saq.redis)))

    async def shutdown(ctx: Context) -> None:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)

    worker: Worker[Context] = Worker(
        queue.saq,
        functions=[(CHUNK_TASK, runner.run_chunk)],
        startup=startup,
        shutdown=shutdown,
        id=worker_id,
        concurrency=math.ceil(2 * settings.concurrency / settings.chunk_size) + 1,
        # Short waits everywhere: under an anyio portal (Litestar's test client) cancelling SAQ's tasks is not
        # always delivered, and stop() then waits for each poll and BLMOVE to come back on its own.
        timers={"sweep": settings.sweep_s, "abort": 1, "schedule": 1, "worker_info": 2},
        dequeue_timeout=1.0,
        shutdown_grace_period_s=0,
    )
    worker.SIGNALS = []
    return worker
