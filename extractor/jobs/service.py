"""Batches as the HTTP API sees them: submit (idempotent), read progress, stream results and events, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from extractor.answers import Batch, BatchEvent
from extractor.errors import DuplicateDocumentIdError, IdempotencyMismatchError, PayloadTooLargeError
from extractor.extraction.result import ExtractOptions
from extractor.jobs.queue import BatchQueue
from extractor.jobs.state import BatchRecord, BatchStore, new_batch_id
from extractor.registry.service import SchemaRegistry
from extractor.settings import JobsSettings
from extractor.telemetry.tracing import Tracing
from extractor.vocabulary import FINAL_ITEM_STATUSES, ItemStatus

__all__ = ["BatchService", "Submission", "body_digest", "describe"]

_PAGE = 200
_POLL_S = 0.2
_CANCEL_WAIT_S = 5.0
_CANCEL_POLL_S = 0.02


@dataclass(frozen=True)
class Submission:
    """A batch as submitted: the schema as the caller named it, options, and (id, text) pairs."""

    schema_ref: str
    options: ExtractOptions
    documents: Sequence[tuple[str, str]]


def body_digest(submission: Submission) -> str:
    """What an Idempotency-Key is bound to: the same batch whether it came as JSON or NDJSON."""
    digest = hashlib.sha256()
    digest.update(json.dumps([submission.schema_ref, submission.options.model_dump(mode="json")]).encode())
    for doc_id, text in submission.documents:
        digest.update(json.dumps([doc_id, text]).encode())
    return digest.hexdigest()


def _check_submission(submission: Submission, settings: JobsSettings) -> None:
    """Limits (413), and ids unique (422): results are looked up by id, so two documents cannot share one."""
    count = len(submission.documents)
    if count > settings.max_documents:
        raise PayloadTooLargeError(
            f"{count} documents; a batch takes at most {settings.max_documents}", limit=settings.max_documents
        )
    first_index: dict[str, int] = {}
    for index, (doc_id, text) in enumerate(submission.documents):
        if (first := first_index.setdefault(doc_id, index)) != index:
            raise DuplicateDocumentIdError(
                f"document id {doc_id!r} is used at index {first} and at index {index}; each id must be unique",
                document=doc_id,
                indexes=[first, index],
            )
        size = len(text.encode())
        if size > settings.max_document_bytes:
            raise PayloadTooLargeError(
                f"document {doc_id!r} (index {index}) is {size} bytes; the limit is {settings.max_document_bytes}",
                limit=settings.max_document_bytes,
                document=doc_id,
            )


def _line(doc_id: str, index: int, status: str, result: str | None) -> str:
    """A result line: the stored one, or for a cancelled item (no result) its id and status."""
    return result if result is not None else json.dumps({"id": doc_id, "index": index, "status": status})


class BatchService:
    def __init__(
        self,
        store: BatchStore,
        queue: BatchQueue,
        registry: SchemaRegistry,
        settings: JobsSettings,
        tracing: Tracing | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._registry = registry
        self._settings = settings
        self._tracing = tracing or Tracing()

    async def submit(
        self, tenant: str, submission: Submission, idempotency_key: str | None = None
    ) -> tuple[BatchRecord, bool]:
        """Create and enqueue a batch; returns it and whether it is new (False: an Idempotency-Key replay).

        A key whose batch is gone (expired or deleted) binds afresh: the request is new again.
        """
        _check_submission(submission, self._settings)
        schema = await self._registry.resolve(tenant, submission.schema_ref)  # unknown schema: 404 now, not per item
        digest = body_digest(submission) if idempotency_key is not None else ""  # only a key's replay needs it
        bound = None
        if idempotency_key is not None:
            bound = await self._store.read_idempotency_key(tenant, idempotency_key)
            if bound is not None and await self._store.exists(bound[0]):
                return await self._replay(tenant, idempotency_key, *bound, digest), False
        batch_id = new_batch_id()
        await self._store.create(
            batch_id,
            tenant=tenant,
            schema_ref=schema.version.ref,
            options=submission.options.model_dump(mode="json", exclude_defaults=True),
            documents=submission.documents,
            chunk_size=self._settings.chunk_size,
            digest=digest,
            trace=self._tracing.carrier(),  # the items' traces link to this request's
        )
        if idempotency_key is not None:
            winner = await self._store.bind_idempotency_key(tenant, idempotency_key, batch_id, digest, bound)
            if winner is not None:  # a concurrent submission with the same key bound it first
                await self._store.delete(batch_id)
                return await self._replay(tenant, idempotency_key, *winner, digest), False
        await self._queue.enqueue(batch_id, len(submission.documents), self._settings.chunk_size)
        return await self._store.get(batch_id), True

    async def _replay(self, tenant: str, key: str, batch_id: str, stored: str, digest: str) -> BatchRecord:
        """The batch bound to ``key``; its chunks are enqueued again (a no-op for any already queued or done)."""
        if stored != digest:
            raise IdempotencyMismatchError(
                f"Idempotency-Key {key!r} was used for a different batch body", batch_id=batch_id
            )
        record = await self._store.get(batch_id, tenant)
        if record.finished_at is None and not record.cancelled:
            await self._queue.enqueue(batch_id, record.total, record.chunk_size)
        return record

    async def get(self, tenant: str, batch_id: str) -> BatchRecord:
        return await self._store.get(batch_id, tenant)

    async def cancel(self, tenant: str, batch_id: str) -> BatchRecord:
        """No new item starts; running model calls are aborted; finished results are kept.

        Returns once the workers have stopped the batch's running items (each is told on the cancel channel), so
        nothing of the batch starts after the answer. A worker that does not answer (dead, or cut off from Redis)
        holds its items running until its chunk is handed out again, which then cancels them; after
        ``_CANCEL_WAIT_S`` the batch is returned as it stands.
        """
        await self._store.get(batch_id, tenant)  # another tenant's batch is a 404, not a cancel
        await self._store.cancel(batch_id)
        deadline = time.monotonic() + _CANCEL_WAIT_S
        while True:
            record = await self._store.get(batch_id, tenant)
            if not record.counts["running"] or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(_CANCEL_POLL_S)

    async def results(self, tenant: str, batch_id: str, offset: int = 0, wait: bool = False) -> AsyncIterator[str]:
        """NDJSON lines in submission order from ``offset``, read a page at a time.

        Without ``wait`` the stream ends before the first unfinished item (resume with ``offset``); with it, the
        stream waits for each item in turn and ends after the last.
        """
        record = await self._store.get(batch_id, tenant)  # 404 before the stream starts
        return self._lines(record.batch_id, record.total, offset, wait)

    async def _lines(self, batch_id: str, total: int, offset: int, wait: bool) -> AsyncIterator[str]:
        index = max(offset, 0)
        while index < total:
            page = await self._store.page(batch_id, index, min(index + _PAGE, total))
            for doc_id, status, result in page:
                if status not in FINAL_ITEM_STATUSES:
                    break
                yield _line(doc_id, index, str(status), result) + "\n"
                index += 1
            else:
                if page:
                    continue
                return  # the batch is gone (expired or deleted) mid-stream: nothing more will come
            if not wait or not await self._wait_final(batch_id, index):
                return

    async def _wait_final(self, batch_id: str, index: int) -> bool:
        """Poll one item's status (not the result payloads) until it is final; False if the batch is gone."""
        while True:
            status = await self._store.item_status(batch_id, index)
            if status is None:
                return False
            if status in FINAL_ITEM_STATUSES:
                return True
            await asyncio.sleep(_POLL_S)

    async def events(self, tenant: str, batch_id: str, interval_s: float = 0.5) -> AsyncIterator[BatchEvent]:
        """Progress snapshots whenever the counts change; the last one has ``"final": true``."""
        record = await self._store.get(batch_id, tenant)
        return self._snapshots(record, interval_s)

    async def _snapshots(self, record: BatchRecord, interval_s: float) -> AsyncIterator[BatchEvent]:
        last: dict[str, int] | None = None
        while True:
            final = record.finished_at is not None
            if record.counts != last or final:
                yield BatchEvent(**dict(describe(record)), final=final)
                last = record.counts
            if final:
                return
            await asyncio.sleep(interval_s)
            record = await self._store.get(record.batch_id)


def describe(record: BatchRecord) -> Batch:
    """The public view of a batch."""
    return Batch(
        batch_id=record.batch_id,
        status=record.status,
        schema_ref=record.schema_ref,
        total=record.total,
        done=record.done,
        counts={ItemStatus(status): count for status, count in record.counts.items()},
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        documents_per_second=round(record.throughput(time.time()), 3),
    )
