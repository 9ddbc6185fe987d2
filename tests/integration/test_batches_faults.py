"""Batch jobs when things fail under them: Redis errors in a chunk, a batch vanishing mid-stream, stale idempotency
keys, malformed ids, Redis down under the queue. Real Redis (db 15); the chunk runner is driven directly where the
fault has to land at one exact step."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, cast

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from saq.job import Job
from saq.types import Context

from extractor import keys
from extractor.errors import InvalidInputError
from extractor.jobs.queue import BatchQueue, open_queue
from extractor.jobs.service import BatchService
from extractor.jobs.state import BatchStore, new_batch_id
from extractor.jobs.worker import ChunkRunner
from extractor.registry.service import SchemaRegistry
from extractor.settings import JobsSettings
from extractor.vocabulary import ItemStatus
from tests.support.batches import GOOD, documents, submit
from tests.support.fake_model import FakeModel
from tests.support.redis_db import INTEGRATION_URL

SETTINGS = JobsSettings(concurrency=4, chunk_size=4, retry_base_s=0.01, transient_attempts=3)


class FlakyStore(BatchStore):
    """Our store, except that recording the outcome of item ``broken`` fails as if Redis dropped the connection."""

    def __init__(self, redis: Redis, broken: int) -> None:
        super().__init__(redis, 3600)
        self.broken = broken

    async def finish(self, batch_id: str, index: int, status: ItemStatus, line: str | None) -> bool:
        if index == self.broken:
            raise RedisConnectionError("connection reset")
        return await super().finish(batch_id, index, status, line)


class Extraction:
    """Stands in for the pipeline: item ``slow`` never ends by itself, ``gated`` waits for it to start; all but
    ``slow`` raise the scripted errors in turn."""

    def __init__(self, slow: str, errors: list[BaseException], gated: str = "") -> None:
        self.slow = slow
        self.gated = gated
        self.errors = errors
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self.slow_started = asyncio.Event()

    async def extract(
        self, tenant: str, schema_ref: str, text: str, options: Any, *, model_gate: Any = None, report: Any = None
    ) -> Any:
        async with model_gate():  # as the pipeline enters it around its model call
            return await self._call(text)

    async def _call(self, text: str) -> Any:
        self.calls.append(text)
        if text == self.gated:
            await self.slow_started.wait()  # it fails only once the slow one is under way
            await asyncio.sleep(0.1)  # and the others have settled
        if text == self.slow:
            self.slow_started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.append(text)
                raise
        raise self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]


async def new_batch(store: BatchStore, count: int) -> str:
    batch_id = new_batch_id()
    docs = [(f"d{n}", f"text {n}") for n in range(count)]
    await store.create(
        batch_id, tenant="t", schema_ref="receipt@1", options={}, documents=docs, chunk_size=4, digest="x"
    )
    return batch_id


def runner(store: BatchStore, extraction: Extraction) -> ChunkRunner:
    return ChunkRunner(extraction, store, SETTINGS)


def job(*, attempts: int, retries: int) -> Context:
    return cast("Context", {"job": Job("extract_chunk", retries=retries, attempts=attempts, heartbeat=0)})


async def test_a_failing_item_cancels_its_siblings_and_the_last_attempt_fails_the_chunk(redis: Redis) -> None:
    store = FlakyStore(redis, broken=0)
    batch_id = await new_batch(store, 4)
    extraction = Extraction(slow="text 1", errors=[InvalidInputError("bad")], gated="text 0")
    chunk = runner(store, extraction)
    with pytest.raises(ExceptionGroup):
        await chunk.run_chunk(job(attempts=1, retries=3), batch_id=batch_id, start=0, stop=4)
    assert extraction.cancelled == ["text 1"]  # not left running while the queue retries the chunk
    before = await store.get(batch_id)
    assert before.finished_at is None
    assert before.counts["running"] == 2  # the broken item and the interrupted one wait for the retry
    extraction.calls.clear()
    assert await chunk.run_chunk(job(attempts=3, retries=3), batch_id=batch_id, start=0, stop=4) == 0
    assert sorted(extraction.calls) == ["text 0", "text 1"]  # the finished items were not redone
    record = await store.get(batch_id)
    assert record.finished_at is not None
    assert record.counts == {"queued": 0, "running": 0, "ok": 0, "empty": 0, "failed": 4, "cancelled": 0}
    lines = {i: json.loads(line) for i, line in (await redis.hgetall(keys.batch_results(batch_id))).items()}
    assert lines["0"]["error"]["type"] == "chunk-abandoned"
    assert lines["0"]["id"] == "d0"
    assert "3 attempts" in lines["1"]["error"]["detail"]
    assert lines["2"]["error"]["type"] == "invalid-input"  # finished before the chunk gave up: kept
    assert 0 < await redis.ttl(keys.batch_results(batch_id)) <= 3600


async def test_results_of_a_batch_written_before_the_deadline_field_still_expire(redis: Redis) -> None:
    # A rolling upgrade: the record came from a version that wrote no ``expires_at_ms``; its results take the
    # record's remaining life instead of living forever.
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 1)
    await redis.hdel(keys.batch(batch_id), "expires_at_ms")
    await redis.expire(keys.batch(batch_id), 600)
    await store.claim(batch_id, 0, 1)
    assert await store.finish(batch_id, 0, ItemStatus.OK, '{"index": 0}')
    assert 0 < await redis.ttl(keys.batch_results(batch_id)) <= 600


async def test_redis_errors_inside_extraction_are_retried_with_backoff(redis: Redis) -> None:
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 1)
    errors: list[BaseException] = [RedisConnectionError("blip"), RedisConnectionError("blip"), InvalidInputError("bad")]
    extraction = Extraction(slow="none", errors=errors)
    assert await runner(store, extraction).run_chunk(job(attempts=1, retries=3), batch_id=batch_id, start=0, stop=1)
    assert len(extraction.calls) == 3
    line = json.loads(await redis.hget(keys.batch_results(batch_id), "0") or "{}")
    assert line["error"]["type"] == "invalid-input"
    assert line["error"]["tries"] == 3


async def test_results_stream_ends_when_the_batch_vanishes(redis: Redis) -> None:
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 3)
    await store.claim(batch_id, 0, 1)
    await store.finish(batch_id, 0, ItemStatus.OK, json.dumps({"id": "d0", "index": 0, "status": "ok"}))
    service = BatchService(store, cast("BatchQueue", None), cast("SchemaRegistry", None), SETTINGS)
    lines: list[str] = []

    async def follow() -> None:
        async for line in await service.results("t", batch_id, wait=True):
            lines.append(line)  # noqa: PERF401 (read as they come)

    stream = asyncio.create_task(follow())
    await asyncio.sleep(0.3)  # the stream waits on item 1
    assert len(lines) == 1
    await store.delete(batch_id)
    await asyncio.wait_for(stream, timeout=2)
    assert [json.loads(line)["id"] for line in lines] == ["d0"]


async def test_idempotency_key_of_a_vanished_batch_binds_afresh(client: AsyncTestClient[Any], redis: Redis) -> None:
    headers = {"Idempotency-Key": "nightly"}
    first = (await submit(client, documents(2), headers=headers)).json()["batch_id"]
    await BatchStore(redis, 60).delete(first)
    again = await submit(client, documents(2), headers=headers)
    assert again.status_code == 202, again.text
    second = again.json()["batch_id"]
    assert second != first
    replay = await submit(client, documents(2), headers=headers)
    assert (replay.status_code, replay.json()["batch_id"]) == (200, second)


@pytest.mark.parametrize("suffix", [":docs", ":items", ":ids"])
async def test_a_malformed_batch_id_is_404(client: AsyncTestClient[Any], fake_model: FakeModel, suffix: str) -> None:
    fake_model.reply(GOOD)
    batch_id = (await submit(client, documents(2))).json()["batch_id"]
    for method, path in [("GET", ""), ("GET", "/results"), ("GET", "/events"), ("DELETE", "")]:
        response = await client.request(method, f"/v1/batches/{batch_id}{suffix}{path}")
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["type"] == "batch-not-found"


async def test_dequeue_backs_off_while_redis_is_down() -> None:
    queue = open_queue("redis://127.0.0.1:1/0")
    started = time.monotonic()
    assert await queue.dequeue(timeout=1) is None
    assert await queue.dequeue(timeout=1) is None
    assert time.monotonic() - started >= 0.3  # 0.1 s then 0.2 s, not a spin
    await queue.redis.aclose()


async def test_a_chunk_end_redis_cannot_take_is_left_to_the_sweep(caplog: pytest.LogCaptureFixture) -> None:
    """SAQ's worker would raise it out of a task nobody awaits ("Task exception was never retrieved", with the
    whole traceback, for every chunk while Redis is down); the queue logs one line instead."""
    from saq.job import Status

    queue = open_queue("redis://127.0.0.1:1/0")
    chunk = Job("extract_chunk", key="b:0", retries=3, heartbeat=10)
    chunk.queue = queue
    with caplog.at_level("WARNING", logger="extractor.jobs"):
        await queue.retry(chunk, "Redis failed under the chunk")
        await queue.finish(chunk, Status.COMPLETE, result=4)
    await queue.redis.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "extractor.jobs"]
    assert len(lines) == 2
    assert "chunk b:0 not recorded for a retry" in lines[0]
    assert "chunk b:0 not recorded as complete" in lines[1]
    assert all("a sweep will hand it out again" in line for line in lines)


async def test_an_item_finishes_once_and_only_once_claimed(redis: Redis) -> None:
    """The outcome of an item is recorded only from running: once, and never for an unclaimed or cancelled item."""
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 4)
    line = json.dumps({"id": "d0", "index": 0, "status": "ok"})
    assert await store.finish(batch_id, 0, ItemStatus.OK, line) is False, "never claimed"
    assert [index for index, _ in await store.claim(batch_id, 0, 2)] == [0, 1]
    assert await store.finish(batch_id, 0, ItemStatus.OK, line) is True
    assert await store.finish(batch_id, 0, ItemStatus.OK, line) is False, "a second run records nothing"
    assert [(i, doc["id"]) for i, doc in await store.claim(batch_id, 0, 4)] == [(1, "d1"), (2, "d2"), (3, "d3")]
    record = await store.get(batch_id)
    assert (record.counts["queued"], record.counts["running"], record.counts["ok"]) == (0, 3, 1)
    assert record.started_at is not None
    await store.cancel(batch_id)
    assert (await store.get(batch_id)).counts["running"] == 3, "running items are their workers' to settle"
    await store.settle(batch_id, 0, 2)
    assert await store.finish(batch_id, 1, ItemStatus.OK, line) is False, "settled as cancelled first"
    assert await store.claim(batch_id, 2, 4) == [], "a cancelled batch runs nothing"
    after = await store.get(batch_id)
    assert after.counts == {"queued": 0, "running": 0, "ok": 1, "empty": 0, "failed": 0, "cancelled": 3}
    assert after.finished_at is not None


async def test_a_cancel_is_published_to_the_workers(redis: Redis) -> None:
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 4)
    await store.claim(batch_id, 0, 4)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(keys.BATCH_CANCELS)
        assert (await pubsub.get_message(timeout=2) or {}).get("type") == "subscribe"
        assert await store.cancel(batch_id) is True
        message = await pubsub.get_message(timeout=2)
        assert message is not None
        assert (message["channel"], message["data"]) == (keys.BATCH_CANCELS, batch_id)
        assert await store.cancel(batch_id) is False, "already cancelled: nothing more to tell"
        assert await pubsub.get_message(timeout=0.2) is None


@pytest.mark.parametrize(("attempts", "settled"), [(2, True), (1, False)])
async def test_a_chunk_whose_worker_died_on_its_last_attempt_is_settled_by_the_sweep(
    redis: Redis, attempts: int, settled: bool
) -> None:
    """SAQ's real sweep on a job a dead worker held: re-queued while it has attempts left; on its last one our
    hook fails the chunk's unfinished items, so the batch still finishes."""
    from saq.job import Status

    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 4)
    await store.claim(batch_id, 0, 2)  # the dead worker held these running, and finished the first
    await store.finish(batch_id, 0, ItemStatus.OK, json.dumps({"id": "d0", "index": 0, "status": "ok"}))
    saq = open_queue(INTEGRATION_URL)
    settings = SETTINGS.model_copy(update={"heartbeat_s": 1, "redeliveries": 2})
    queue = BatchQueue(saq, settings)
    saq.on_lost = runner(store, Extraction(slow="none", errors=[InvalidInputError("unused")])).settle_lost
    try:
        await queue.enqueue(batch_id, 4, 4)
        job = await saq.dequeue()
        assert job is not None
        await job.update(attempts=attempts)  # the worker started this attempt, then died without a heartbeat
        await asyncio.sleep(1.3)
        await saq.sweep(abort=0.1)
        record = await store.get(batch_id)
        after = await saq.job(job.key)
    finally:
        await saq.disconnect()
    if settled:
        assert record.counts == {"queued": 0, "running": 0, "ok": 1, "empty": 0, "failed": 3, "cancelled": 0}
        assert record.finished_at is not None
        line = json.loads(await redis.hget(keys.batch_results(batch_id), "1") or "{}")
        assert line["error"]["type"] == "chunk-abandoned"
        assert "lost its worker on its last attempt (2 of 2)" in line["error"]["detail"]
    else:
        assert record.counts["failed"] == 0, "attempts left: the sweep re-queues it and settles nothing"
        assert after is not None
        assert after.status == Status.QUEUED


@pytest.mark.parametrize("subscribed", [True, False])
async def test_a_cancel_stops_a_running_chunk(redis: Redis, subscribed: bool) -> None:
    """Told on the cancel channel, a chunk stops at once; a worker that missed the message stops at its next
    heartbeat, which reads the batch's state."""
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 4)
    extraction = Extraction(slow="text 1", errors=[InvalidInputError("bad")])
    heartbeat_s = 10 if subscribed else 1  # a heartbeat every 3.3 s, or every 0.5 s
    chunk = ChunkRunner(
        extraction,
        store,
        SETTINGS.model_copy(update={"heartbeat_s": heartbeat_s}),
    )
    listening = asyncio.create_task(chunk.cancels.listen(redis)) if subscribed else None
    await asyncio.sleep(0.1)  # subscribed
    run = asyncio.create_task(chunk.run_chunk(job(attempts=1, retries=3), batch_id=batch_id, start=0, stop=4))
    await extraction.slow_started.wait()
    while (await store.get(batch_id)).counts["failed"] < 3:  # noqa: ASYNC110 (the others' outcomes are recorded)
        await asyncio.sleep(0.01)
    cancelled_at = time.monotonic()
    await store.cancel(batch_id)
    try:
        assert await asyncio.wait_for(run, timeout=3) == 0
    finally:
        if listening is not None:
            listening.cancel()
    assert time.monotonic() - cancelled_at < (0.5 if subscribed else 1.5)
    assert extraction.cancelled == ["text 1"]
    record = await store.get(batch_id)
    assert record.counts == {"queued": 0, "running": 0, "ok": 0, "empty": 0, "failed": 3, "cancelled": 1}
    assert record.finished_at is not None


async def test_a_cancel_that_no_worker_answers_returns_in_time_and_the_redelivery_settles_it(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead worker held a chunk: DELETE answers after its wait with the items still running; when the queue hands
    the chunk out again, the chunk cancels them instead of running them."""
    monkeypatch.setattr("extractor.jobs.service._CANCEL_WAIT_S", 0.3)
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 4)
    await store.claim(batch_id, 0, 4)  # then the worker died
    service = BatchService(store, cast("BatchQueue", None), cast("SchemaRegistry", None), SETTINGS)
    started = time.monotonic()
    answer = await service.cancel("t", batch_id)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert (answer.status, answer.counts["running"], answer.finished_at) == ("cancelled", 4, None)
    extraction = Extraction(slow="none", errors=[InvalidInputError("unused")])
    assert (
        await runner(store, extraction).run_chunk(job(attempts=2, retries=3), batch_id=batch_id, start=0, stop=4) == 0
    )
    assert extraction.calls == []
    after = await store.get(batch_id)
    assert after.counts == {"queued": 0, "running": 0, "ok": 0, "empty": 0, "failed": 0, "cancelled": 4}
    assert after.finished_at is not None


async def test_a_stray_cancellation_inside_a_live_batch_hands_the_chunk_back(redis: Redis) -> None:
    """An item whose pipeline ends in CancelledError that is no cancel of its batch (say, a shared load cancelled
    under it) must not end the chunk as done: its items would stay running for good. The chunk goes back to the
    queue with them running."""
    store = BatchStore(redis, 3600)
    batch_id = await new_batch(store, 4)
    extraction = Extraction(slow="none", errors=[asyncio.CancelledError()])
    with pytest.raises(asyncio.CancelledError):
        await runner(store, extraction).run_chunk(job(attempts=1, retries=3), batch_id=batch_id, start=0, stop=4)
    record = await store.get(batch_id)
    assert (record.counts["running"], record.finished_at) == (4, None), "left for the re-delivery"


async def test_a_chunk_failing_in_a_cancelled_batch_settles_its_items(redis: Redis) -> None:
    """Redis fails one item's record while the batch is being cancelled (this worker not told yet): the chunk's
    unfinished items turn cancelled at once instead of waiting for the queue's retry."""
    store = FlakyStore(redis, broken=0)
    batch_id = await new_batch(store, 4)
    extraction = Extraction(slow="text 1", errors=[InvalidInputError("bad")], gated="text 0")
    run = asyncio.create_task(
        runner(store, extraction).run_chunk(job(attempts=1, retries=3), batch_id=batch_id, start=0, stop=4)
    )
    await extraction.slow_started.wait()
    await store.cancel(batch_id)  # published, but this runner does not listen
    with pytest.raises(ExceptionGroup):
        await run
    record = await store.get(batch_id)
    assert record.counts == {"queued": 0, "running": 0, "ok": 0, "empty": 0, "failed": 2, "cancelled": 2}
    assert record.finished_at is not None
