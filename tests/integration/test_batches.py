"""Batch jobs end to end: real Redis (db 15), the worker running inside the app, the model faked at the transport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from extractor import keys
from extractor.settings import Settings
from tests.support.app import app_client, make_settings
from tests.support.batches import GOOD, documents, metric, result_lines, submit, wait_finished
from tests.support.fake_model import FakeModel

JOBS = {"concurrency": 8, "chunk_size": 4, "retry_base_s": 0.01, "heartbeat_s": 2, "sweep_s": 1}


class SlowModel:
    """The scripted fake model behind a delay, recording when each chat call started."""

    def __init__(self, model: FakeModel, delay_s: float) -> None:
        self.model = model
        self.delay_s = delay_s
        self.started: list[float] = []

    async def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/chat/completions"):
            self.started.append(time.monotonic())
            await asyncio.sleep(self.delay_s)
        return self.model.handler(request)


@asynccontextmanager
async def open_client(settings: Settings, handler: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    async with app_client(settings, handler) as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    return make_settings(jobs=JOBS)


async def test_200_documents_complete_with_200_results_in_order(
    client: AsyncTestClient[Any], fake_model: FakeModel, redis: Redis
) -> None:
    fake_model.reply(GOOD)
    docs = documents(200)
    response = await submit(client, docs)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == f"/v1/batches/{accepted['batch_id']}"
    assert accepted["total"] == 200
    assert accepted["schema"] == "receipt@1"
    status = await wait_finished(client, accepted["batch_id"])
    assert status["status"] == "finished"
    assert status["counts"] == {"queued": 0, "running": 0, "ok": 200, "empty": 0, "failed": 0, "cancelled": 0}
    assert status["documents_per_second"] > 0
    lines = await result_lines(client, accepted["batch_id"])
    assert [line["id"] for line in lines] == [doc["id"] for doc in docs]
    assert [line["index"] for line in lines] == list(range(200))
    assert {line["status"] for line in lines} == {"ok"}
    assert lines[7]["data"]["merchant"] == "ACME Market"
    assert lines[7]["schema"] == "receipt@1"
    assert fake_model.chat_calls == 200
    deadline = await redis.pexpiretime(keys.batch(accepted["batch_id"]))
    assert deadline > 0
    assert await redis.pexpiretime(keys.batch_results(accepted["batch_id"])) == deadline  # results expire with it


async def test_items_reuse_the_extraction_cache(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    docs = documents(12)
    first = (await submit(client, docs)).json()
    await wait_finished(client, first["batch_id"])
    second = (await submit(client, docs)).json()
    await wait_finished(client, second["batch_id"])
    lines = await result_lines(client, second["batch_id"])
    assert [line["cached"] for line in lines] == [True] * 12
    assert fake_model.chat_calls == 12


async def test_the_in_process_worker_s_metrics_are_on_metrics(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.reply(GOOD)
    ok, failed = 'extractor_batch_items_total{status="ok"}', 'extractor_batch_items_total{status="failed"}'
    before = (await client.get("/metrics")).text
    good = (await submit(client, documents(6))).json()["batch_id"]
    await wait_finished(client, good)
    fake_model.reply("not json at all")
    bad = (await submit(client, documents(2, prefix="bad"), options={"max_attempts": 1})).json()["batch_id"]
    await wait_finished(client, bad)
    after = (await client.get("/metrics")).text
    assert metric(after, ok) - metric(before, ok) == 6
    assert metric(after, failed) - metric(before, failed) == 2
    assert (
        metric(after, "extractor_batch_item_duration_seconds_count")
        - metric(before, "extractor_batch_item_duration_seconds_count")
        == 8
    )
    assert metric(after, "extractor_batch_model_calls_in_flight") == 0, "every permit given back"


async def test_failed_items_carry_their_error_and_transient_errors_are_retried(
    client: AsyncTestClient[Any], fake_model: FakeModel
) -> None:
    fake_model.fail(503, {"retry-after": "0"}).reply("not json at all")
    response = await submit(client, documents(1), options={"max_attempts": 1})
    batch_id = response.json()["batch_id"]
    status = await wait_finished(client, batch_id)
    assert status["counts"]["failed"] == 1
    assert status["status"] == "finished"
    (line,) = await result_lines(client, batch_id)
    assert line["status"] == "failed"
    assert line["id"] == "doc-0"
    assert line["error"]["type"] == "extraction-failed"
    assert line["error"]["output"] == "not json at all"
    assert fake_model.chat_calls == 2  # the 503 was retried by the queue, the invalid output was not


async def test_cancel_at_a_third_starts_nothing_after_it(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    slow = SlowModel(fake_model, delay_s=0.05)
    async with open_client(make_settings(jobs={**JOBS, "concurrency": 4}), slow.handler) as client:
        batch_id = (await submit(client, documents(200))).json()["batch_id"]
        while (await client.get(f"/v1/batches/{batch_id}")).json()["done"] < 66:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        cancelled = await client.delete(f"/v1/batches/{batch_id}")
        cancelled_at = time.monotonic()
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["counts"]["running"] == 0, "DELETE answers once the workers stopped the batch"
        status = await wait_finished(client, batch_id)
        await asyncio.sleep(0.3)  # anything still to start would start now
        assert [t for t in slow.started if t > cancelled_at] == []
        assert status["status"] == "cancelled"
        counts = status["counts"]
        assert counts["ok"] + counts["cancelled"] == 200
        assert 66 <= counts["ok"] < 120
        lines = await result_lines(client, batch_id)
        assert len(lines) == 200
        assert [line["status"] for line in lines].count("ok") == counts["ok"]
        assert {line["status"] for line in lines} == {"ok", "cancelled"}
        again = await client.delete(f"/v1/batches/{batch_id}")
        assert again.json()["counts"] == counts


async def test_cancel_aborts_a_running_model_call(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    slow = SlowModel(fake_model, delay_s=30)
    async with open_client(make_settings(jobs=JOBS), slow.handler) as client:
        batch_id = (await submit(client, documents(2))).json()["batch_id"]
        while len(slow.started) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        cancelled = (await client.delete(f"/v1/batches/{batch_id}")).json()
        assert cancelled["counts"]["cancelled"] == 2, "aborted before DELETE answered"
        assert cancelled["counts"]["running"] == 0
        assert cancelled["finished_at"] is not None


async def test_idempotency_key_replay_and_mismatch(
    client: AsyncTestClient[Any], fake_model: FakeModel, redis: Redis
) -> None:
    fake_model.reply(GOOD)
    docs = documents(5)
    headers = {"Idempotency-Key": "day-42"}
    first = await submit(client, docs, headers=headers)
    assert first.status_code == 202
    replay = await submit(client, docs, headers=headers)
    assert replay.status_code == 200
    assert replay.json()["batch_id"] == first.json()["batch_id"]
    ndjson = "\n".join(json.dumps(doc) for doc in docs)
    as_ndjson = await client.post(
        "/v1/batches?schema=receipt",
        content=ndjson,
        headers={**headers, "content-type": "application/x-ndjson"},
    )
    assert as_ndjson.status_code == 200
    assert as_ndjson.json()["batch_id"] == first.json()["batch_id"]
    other = await submit(client, documents(6), headers=headers)
    assert other.status_code == 422
    assert other.json()["type"] == "idempotency-key-mismatch"
    await wait_finished(client, first.json()["batch_id"])
    assert fake_model.chat_calls == 5
    records = [key async for key in redis.scan_iter(f"{keys.PREFIX}:batch:*") if key.count(":") == 2]
    assert records == [keys.batch(first.json()["batch_id"])]  # the losing submissions left nothing behind


async def test_ndjson_submission(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    docs = documents(9)
    body = "\n".join(json.dumps(doc) for doc in docs) + "\n\n"
    response = await client.post(
        "/v1/batches",
        params={"schema": "receipt", "options": json.dumps({"grounding": "off"})},
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    await wait_finished(client, batch_id)
    lines = await result_lines(client, batch_id)
    assert [line["id"] for line in lines] == [doc["id"] for doc in docs]
    assert lines[0]["fields"] == {}


async def test_bad_ndjson_line_is_a_400_naming_the_line(client: AsyncTestClient[Any]) -> None:
    response = await client.post(
        "/v1/batches?schema=receipt",
        content='{"id": "a", "text": "x"}\n{"id": "b"}\n',
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 400
    assert "line 2" in response.json()["detail"]


@pytest.mark.parametrize(
    ("docs", "status", "code"),
    [
        (documents(4), 413, "payload-too-large"),
        ([{"id": "big", "text": "x" * 65}], 413, "payload-too-large"),
        ([], 400, "invalid-input"),
        ([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}], 422, "duplicate-document-id"),
    ],
)
async def test_limits(redis: Redis, docs: list[dict[str, str]], status: int, code: str) -> None:
    settings = make_settings(jobs={**JOBS, "max_documents": 3, "max_document_bytes": 64})
    async with open_client(settings, FakeModel().handler) as client:
        response = await submit(client, docs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == code


async def test_unknown_schema_is_404_at_submission(client: AsyncTestClient[Any]) -> None:
    response = await client.post("/v1/batches", json={"schema": "nope", "documents": documents(1)})
    assert response.status_code == 404
    assert response.json()["type"] == "schema-not-found"


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/results"), ("GET", "/events"), ("DELETE", "")])
async def test_unknown_batch_is_404(client: AsyncTestClient[Any], method: str, suffix: str) -> None:
    response = await client.request(method, f"/v1/batches/0123456789abcdef{suffix}")
    assert response.status_code == 404
    assert response.json()["type"] == "batch-not-found"


async def test_another_tenants_batch_is_404(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    settings = make_settings(jobs=JOBS, api_keys="alice:key-a,bob:key-b")
    async with open_client(settings, fake_model.handler) as client:
        alice = {"Authorization": "Bearer key-a"}
        batch_id = (await submit(client, documents(2), headers=alice)).json()["batch_id"]
        assert (await client.get(f"/v1/batches/{batch_id}", headers=alice)).status_code == 200
        bob = {"Authorization": "Bearer key-b"}
        assert (await client.get(f"/v1/batches/{batch_id}", headers=bob)).status_code == 404
        assert (await client.delete(f"/v1/batches/{batch_id}", headers=bob)).status_code == 404


async def test_results_without_wait_stop_at_the_first_unfinished_item(redis: Redis, fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    slow = SlowModel(fake_model, delay_s=0.05)
    async with open_client(make_settings(jobs={**JOBS, "concurrency": 2, "chunk_size": 1}), slow.handler) as client:
        batch_id = (await submit(client, documents(20))).json()["batch_id"]
        early = await result_lines(client, batch_id)
        assert len(early) < 20
        assert [line["index"] for line in early] == list(range(len(early)))
        waited = await result_lines(client, batch_id, wait="true", offset=3)
        assert [line["index"] for line in waited] == list(range(3, 20))


async def test_events_stream_ends_with_a_final_event(client: AsyncTestClient[Any], fake_model: FakeModel) -> None:
    fake_model.reply(GOOD)
    batch_id = (await submit(client, documents(30))).json()["batch_id"]
    response = await client.get(f"/v1/batches/{batch_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\r\n\r\n") if block.strip()]
    kinds = [line.split(": ", 1)[1] for block in events for line in block.splitlines() if line.startswith("event:")]
    assert kinds[-1] == "final"
    assert set(kinds[:-1]) <= {"progress"}
    last = json.loads(next(line[6:] for line in events[-1].splitlines() if line.startswith("data: ")))
    assert last["final"] is True
    assert last["counts"]["ok"] == 30
