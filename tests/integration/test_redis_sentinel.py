"""extractor on a Sentinel-managed master (a master, a replica and a Sentinel started by the test): the master is
killed while requests and a batch run. During the failover a request that reads Redis answers 503
``store-unavailable`` with a sentence and ``Retry-After`` (an extraction may still answer 200: its cache is
best-effort); once the Sentinel has promoted the replica, requests answer 200 again, with no restart; the batch
finishes with every document recorded exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from extractor.redis_connect import connect
from tests.support.app import app_client, make_settings
from tests.support.batches import GOOD, documents, result_lines, submit, wait_finished
from tests.support.fake_model import FakeModel
from tests.support.redis_topologies import SentinelSetup, sentinel_setup

JOBS = {"concurrency": 8, "chunk_size": 4, "retry_base_s": 0.05, "heartbeat_s": 2, "sweep_s": 1}
DOCS = 240


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    with sentinel_setup(tmp_path) as setup:
        yield setup


async def test_the_sentinel_url_reaches_the_master_it_names(sentinel: SentinelSetup) -> None:
    client = connect(sentinel.url)
    try:
        await client.set("greeting", "hello")
        assert await client.get("greeting") == "hello"
        assert (await client.info("server"))["tcp_port"] == sentinel.master_port
    finally:
        await client.aclose()


async def test_a_killed_master_is_a_few_seconds_of_503_then_200_and_the_batch_records_each_item_once(
    sentinel: SentinelSetup, fake_model: FakeModel
) -> None:
    fake_model.reply(GOOD)

    async def slow(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/chat/completions"):
            await asyncio.sleep(0.05)
        return fake_model.handler(request)

    settings = make_settings(redis_url=sentinel.url, jobs=JOBS)
    async with app_client(settings, slow) as client:
        first = await client.post("/v1/extract", json={"schema": "receipt", "text": "ACME Market TOTAL 3.70 EUR"})
        assert first.status_code == 200, first.text
        docs = documents(DOCS)
        batch_id = (await submit(client, docs)).json()["batch_id"]
        while (await client.get(f"/v1/batches/{batch_id}")).json()["done"] < DOCS // 4:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

        killed = sentinel.kill_master()
        killed_at = time.monotonic()
        seen: list[tuple[float, int, dict[str, Any], str | None]] = []  # GET /v1/batches/{id}: reads Redis
        extracts: list[int] = []  # POST /v1/extract: its cache is best-effort, so it may answer throughout
        n = 0
        while time.monotonic() - killed_at < 30:
            n += 1
            response = await client.get(f"/v1/batches/{batch_id}")
            after = time.monotonic() - killed_at
            seen.append((after, response.status_code, response.json(), response.headers.get("retry-after")))
            extract = await client.post("/v1/extract", json={"schema": "receipt", "text": f"during failover {n}"})
            extracts.append(extract.status_code)
            if response.status_code == 200 and any(code == 503 for _, code, _, _ in seen):
                break
            await asyncio.sleep(0.1)
        codes = [code for _, code, _, _ in seen]
        assert set(codes) <= {200, 503}, seen
        assert set(extracts) <= {200, 503}, extracts
        unavailable = [(body, retry_after) for _, code, body, retry_after in seen if code == 503]
        assert unavailable, f"no request saw the failover: {seen}"
        body, retry_after = unavailable[0]
        assert body["type"].endswith("store-unavailable"), body
        assert len(body["detail"].split()) >= 4, body  # a sentence, not a code
        assert retry_after is not None
        assert codes[-1] == 200, f"requests did not recover within 30 s of the kill: {seen}"
        assert sentinel.master() == sentinel.replica_port != killed

        status = await wait_finished(client, batch_id, within_s=60)
        assert status["counts"]["ok"] == DOCS, status
        lines = await result_lines(client, batch_id)
        assert [line["id"] for line in lines] == [doc["id"] for doc in docs]
        assert Counter(line["status"] for line in lines) == {"ok": DOCS}
        recovered_after = seen[-1][0]
        print(  # the figures behind docs/scaling.md's Sentinel paragraph (pytest -s shows them)
            f"failover: {codes.count(503)} reads answered 503, the first 200 came {recovered_after:.1f} s after the "
            f"kill; extracts meanwhile: {Counter(extracts)}; batch of {DOCS}: every item once"
        )
